"""docs/state-backends.md's IAM policy for the s3 backend names every AWS call the
backend makes: a user who grants exactly that policy never meets AccessDenied."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: boto3 methods whose IAM action is not their CamelCase name
ACTIONS = {"list_objects_v2": "s3:ListBucket", "delete_objects": "s3:DeleteObject"}


def test_the_documented_policy_names_every_call_the_s3_backend_makes() -> None:
    code = "".join((ROOT / "reconciler/state" / n).read_text() for n in ("s3.py", "s3_store.py"))
    calls = set(re.findall(r"self\.(s3|dynamodb)\.(\w+)\(", code))
    calls |= {("s3", m) for m in re.findall(r'get_paginator\("(\w+)"\)', code)}
    assert ("s3", "put_object") in calls and ("dynamodb", "put_item") in calls
    needed = {
        ACTIONS.get(method) or f"{service}:{''.join(part.title() for part in method.split('_'))}"
        for service, method in calls
        if method != "get_paginator"
    }
    policy = (ROOT / "docs/state-backends.md").read_text().split("### IAM permissions")[1]
    missing = sorted(a for a in needed if f'"{a}"' not in policy)
    assert not missing, (
        f"the s3 backend calls what docs/state-backends.md does not grant: {missing}"
    )
