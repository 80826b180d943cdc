"""A one-shot `pipeform apply` pushes the reconciler's own metrics to a real Pushgateway.

With `providers.prometheus.pushgatewayUrl` in the Workspace, each apply pushes its result,
the state's shape and each Budget's spend ratio (grouping job=pipeform, workspace=<name>);
counters carry on from what the gateway already holds, so two applies count two.
"""

from __future__ import annotations

import json
import os
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.integration.prometheus_stack import Stack

WORKSPACE = "push-tests"


def tree(root: Path, pushgateway: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeform.yaml").write_text(
        textwrap.dedent(
            f"""
            apiVersion: pipeform/v1
            kind: Workspace
            metadata: {{name: {WORKSPACE}}}
            spec:
              providers:
                prometheus: {{pushgatewayUrl: "{pushgateway}"}}
              defaults: {{labels: {{team: growth}}}}
            ---
            apiVersion: pipeform/v1
            kind: Quota
            metadata: {{name: growth}}
            spec: {{cpu: 4, concurrentJobs: 1}}
            ---
            apiVersion: pipeform/v1
            kind: Budget
            metadata: {{name: growth-monthly}}
            spec: {{amount: 100, scope: {{labels: {{team: growth}}}}}}
            """
        )
    )
    return root


def pushed(pushgateway: str) -> dict[str, Any]:
    """Our group's metric families, by name, as the Pushgateway holds them."""
    with urllib.request.urlopen(pushgateway + "/api/v1/metrics", timeout=5) as response:
        groups = json.loads(response.read())["data"]
    for group in groups:
        labels = group.get("labels") or {}
        if labels.get("job") == "pipeform" and labels.get("workspace") == WORKSPACE:
            return {k: v for k, v in group.items() if isinstance(v, dict)}
    return {}


def sample(families: dict[str, Any], name: str, **labels: str) -> float:
    for metric in families[name]["metrics"]:
        if all(metric["labels"].get(k) == v for k, v in labels.items()):
            return float(metric.get("value", metric.get("count", "nan")))
    raise AssertionError(f"no {name}{labels} in {families[name]}")


def test_each_apply_pushes_its_result_and_the_counters_add_up(
    prometheus_stack: Stack, tmp_path: Path
) -> None:
    root = tree(tmp_path / "tree", prometheus_stack.pushgateway)
    env = {**os.environ, "NO_COLOR": "1"}
    first = run_cli("apply", "--auto-approve", cwd=root, env=env, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    families = pushed(prometheus_stack.pushgateway)
    assert sample(families, "pipeform_apply_total", result="succeeded") == 1
    assert sample(families, "pipeform_resources_changed_total", action="create") == 2
    assert sample(families, "pipeform_budget_spent_ratio", budget="growth-monthly") == 0
    assert "pipeform_last_successful_apply_timestamp_seconds" in families

    again = run_cli("apply", "--auto-approve", cwd=root, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    families = pushed(prometheus_stack.pushgateway)
    assert sample(families, "pipeform_apply_total", result="succeeded") == 2
    assert sample(families, "pipeform_resources_changed_total", action="create") == 2
