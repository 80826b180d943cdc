"""Benchmark the kubernetes provider's refresh: a no-op plan of N Quotas and N Secrets.

Builds one spec tree of N Quotas and N Secrets (an environment-variable source) and runs
the real CLI as subprocesses on it twice: with ``defaults.provider: kubernetes`` against
the test API server (tests/kubernetes/apiserver, started here, in this process) and with
the local provider. For each it measures ``pipeform apply --auto-approve`` from empty
state (once) and a no-op ``pipeform plan`` (best of 3), and counts the API requests the
kubernetes provider made. The target: at most one LIST per kind and namespace on a no-op
plan, whatever N (plus one GET of the Secrets' fingerprint key), and the time beside the
local provider's on the same tree.

    .venv/bin/python bench/kube_plan.py                  # N = 1,000: about a minute
    .venv/bin/python bench/kube_plan.py --sizes 100 1000 3000

A benchmark, not a test: it prints figures and exits 0 unless a command fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kubernetes.apiserver import KubeServer  # noqa: E402
from tests.kubernetes.conftest import write_kubeconfig  # noqa: E402

#: the CLI in a child process, with the kubernetes provider registered (an install made
#: before the provider existed has no entry point for it)
MAIN = (
    "import sys; from providers import base; from providers.kubernetes import "
    "KubernetesProvider; base.register(KubernetesProvider); from reconciler.cli import main; "
    "main(sys.argv[1:])"
)


def write_tree(root: Path, n: int, provider: str, kubeconfig: Path | None) -> Path:
    root.mkdir(parents=True)
    block = (
        f"    kubernetes: {{kubeconfig: {kubeconfig}, namespace: ml}}\n"
        if kubeconfig
        else "    local: {}\n"
    )
    (root / "pipeform.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: bench}\nspec:\n"
        f"  providers:\n{block}  defaults: {{provider: {provider}}}\n"
    )
    target = provider if provider == "kubernetes" else "local"
    docs = []
    for i in range(n):
        docs.append(
            f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: team-{i}}}\n"
            f"spec: {{cpu: {i % 16 + 1}, memory: 8Gi, gpus: 2, concurrentJobs: 3}}\n"
        )
        docs.append(
            f"apiVersion: pipeform/v1\nkind: Secret\nmetadata: {{name: token-{i}}}\n"
            f"spec: {{from: {{env: BENCH_TOKEN}}, targets: [{{provider: {target}}}]}}\n"
        )
    (root / "platform.yaml").write_text("---\n".join(docs))
    return root


def pipeform(*args: str) -> float:
    env = {**os.environ, "BENCH_TOKEN": "bench-token-value", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MAIN, *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0,):
        sys.exit(f"pipeform {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def measure(n: int, work: Path, server: KubeServer, kubeconfig: Path) -> None:
    kube = write_tree(work / f"kube-{n}", n, "kubernetes", kubeconfig)
    local = write_tree(work / f"local-{n}", n, "local", None)
    rows = []
    for name, tree in (("kubernetes", kube), ("local", local)):
        server.reset_requests()
        apply = pipeform("apply", "--auto-approve", "--parallelism", "16", str(tree))
        applied = len(server.requests)
        plans = []
        for _ in range(3):
            server.reset_requests()
            plans.append(pipeform("plan", "--detailed-exitcode", str(tree)))
        requests = sorted(f"{r.verb} {r.resource}" for r in server.requests)
        rows.append((name, apply, applied, min(plans), requests))
    print(f"\n{n:,} Quotas + {n:,} Secrets")
    print(f"  {'provider':<11} {'apply':>8} {'requests':>9} {'no-op plan':>11}  plan requests")
    for name, apply, applied, plan, requests in rows:
        shown = ", ".join(requests) if name == "kubernetes" else "(none: files)"
        print(f"  {name:<11} {apply:>7.2f}s {applied:>9,} {plan:>10.2f}s  {shown}")
    ratio = rows[0][3] / rows[1][3]
    print(f"  no-op plan, kubernetes / local: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-kube-") as tmp:
        work = Path(tmp)
        with KubeServer() as server:
            server.add_namespace("ml")
            kubeconfig = write_kubeconfig(work / "kubeconfig", server.url, server.token)
            for n in args.sizes:
                measure(n, work, server, kubeconfig)


if __name__ == "__main__":
    main()
