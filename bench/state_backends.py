"""What shared state costs: `pipeform apply` creating N resources and a no-op `pipeform
plan` of the same tree, on the sqlite, postgres and s3 state backends, side by side.

The tree is bench/plan.py's flat tree of N Quotas on the fake provider (the provider costs
next to nothing, so what differs is the state backend). PostgreSQL (Debian's postgresql)
and the AWS emulator (moto_server, for S3 and DynamoDB) run on 127.0.0.1, started the way
the tests start them (tests/state/services.py). It also checks that creating on the s3
backend scales linearly: the time to create 1,000 at most 12x the time to create 100
(each resource's record is one small object: no rewrite of the whole state).

    .venv/bin/python bench/state_backends.py                  # 100 and 1,000: about 2 minutes
    .venv/bin/python bench/state_backends.py --sizes 100 1000 --backends s3

A benchmark, not a test: it prints figures and exits 0 unless a command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from plan import best_of, measure, pipeform_command  # noqa: E402
from plan import write_tree as write_quotas  # noqa: E402

BACKENDS = ("sqlite", "postgres", "s3")
S3_LINEAR_MAX = 12.0  # time to create 1,000 / time to create 100, at most
DSN_ENV = "PIPEFORM_BENCH_PG_DSN"


def state_block(backend: str, tag: str, servers: dict[str, object]) -> dict[str, object]:
    if backend == "sqlite":
        return {"backend": "sqlite"}
    if backend == "postgres":
        return {"backend": "postgres", "dsn": {"env": DSN_ENV}, "schemaName": tag}
    moto = servers["s3"]
    return {"backend": "s3", "bucket": "pipeform-bench", "key": tag, "region": "us-east-1",
            "lockTable": "pipeform-bench-locks", "endpointUrl": moto.endpoint}  # type: ignore[attr-defined]  # fmt: skip


def start_servers(backends: list[str], stack: ExitStack) -> dict[str, object]:
    from tests.state.services import running_moto, running_postgres

    servers: dict[str, object] = {}
    if "postgres" in backends:
        pg = stack.enter_context(running_postgres())
        os.environ[DSN_ENV] = pg.dsn()
        servers["postgres"] = pg
    if "s3" in backends:
        moto = stack.enter_context(running_moto())
        os.environ.update(moto.env())
        import boto3

        session = boto3.session.Session(region_name="us-east-1")
        session.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="pipeform-bench")
        session.client("dynamodb", endpoint_url=moto.endpoint).create_table(
            TableName="pipeform-bench-locks",
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        servers["s3"] = moto
    return servers


def run_one(backend: str, size: int, base: Path, servers: dict[str, object]) -> tuple[float, float]:
    """(seconds to create `size`, seconds of a no-op plan, best of 3)."""
    root = base / f"{backend}-{size}"
    write_quotas(root, "pipeform", "flat", size)
    block = state_block(backend, f"bench_{backend}_{size}", servers)
    workspace = (
        "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: bench}\n"
        f"spec:\n  defaults: {{provider: fake}}\n  state: {json.dumps(block)}\n"
    )
    (root / "pipeform.yaml").write_text(workspace, encoding="utf-8")
    command = pipeform_command()
    apply = measure([*command, "apply", "--auto-approve"], root, says="Apply complete")
    noop = best_of(3, [*command, "plan"], root, says="No changes")
    return apply.seconds, noop.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = parser.parse_args()
    results: dict[tuple[str, int], tuple[float, float]] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pipeform-bench-") as tmp:
        servers = start_servers(args.backends, stack)
        for size in args.sizes:
            for backend in args.backends:
                results[backend, size] = run_one(backend, size, Path(tmp), servers)
                print(f"  {backend:<9} N={size:<6} done", file=sys.stderr)
    header = f"{'step':<26}{'N':>7}" + "".join(f"{b:>12}" for b in args.backends)
    print(header)
    for step, index in (("apply, creating N (s)", 0), ("plan, no changes (s)", 1)):
        for size in args.sizes:
            cells = "".join(f"{results[b, size][index]:>12.2f}" for b in args.backends)
            print(f"{step:<26}{size:>7}{cells}")
    if "s3" in args.backends and {100, 1000} <= set(args.sizes):
        ratio = results["s3", 1000][0] / results["s3", 100][0]
        verdict = "ok" if ratio <= S3_LINEAR_MAX else "MISSED"
        print(f"s3 create: 1,000 / 100 = {ratio:.1f}x (target <= {S3_LINEAR_MAX:.0f}x: {verdict})")


if __name__ == "__main__":
    main()
