"""A no-op plan on the kubernetes provider against the test API server, beside the same
tree on the local provider (a benchmark, not a test).

The tree: one Dataset (a 90-row CSV) and its FeatureSet, then --units Quotas and Secrets
and --jobs TrainingJobs (each reading the FeatureSet, with the unit's Secret as an
environment variable), 100 units per file. The kubernetes tree has
``defaults: {provider: kubernetes}`` (Quota -> ResourceQuota, Secret -> Secret, TrainingJob
-> ConfigMap + Job; Dataset and FeatureSet on the local provider's handlers); the local
tree has ``defaults: {provider: local}``.

Setting up applies each tree with the CLI from empty state, as a user would, timed, with
the kubernetes apply's API requests counted. The kubernetes tree's Jobs are played by a
thread in this process that marks each new Job succeeded with the termination message the
trainer writes (the test server runs no pods); the local tree's jobs run
tests/training/fake_trainer.py (the trainer's contract without torch). Then each no-op
plan (``plan --detailed-exitcode``, exit 0) runs --runs times, alternating, and the script
prints the median wall time of each and the API requests of the kubernetes plan by verb,
resource and namespace. With ``--jobs 0`` the apply times the provider's own writes
(Quotas and Secrets, no Job to wait for).

    PYTHONPATH=$PWD .venv/bin/python bench/kubernetes_plan.py               # 1,000 of each
    PYTHONPATH=$PWD .venv/bin/python bench/kubernetes_plan.py --units 1000 --jobs 0
    PYTHONPATH=$PWD .venv/bin/python bench/kubernetes_plan.py --units 100 --jobs 100
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from plan import Run, measure  # bench/plan.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kubernetes.apiserver import KubeServer  # noqa: E402
from tests.kubernetes.conftest import write_kubeconfig  # noqa: E402
from tests.kubernetes.training_bench import DIGEST, message  # noqa: E402

FAKE_TRAINER = ROOT / "tests" / "training" / "fake_trainer.py"
NAMESPACE = "ml"
#: pipeform with the kubernetes provider registered as its entry point would (an installed
#: package's metadata may predate it); both contenders start the same way
BOOT = (
    "from providers import base; from providers.kubernetes import KubernetesProvider; "
    "base.register(KubernetesProvider); from reconciler.cli import run; run()"
)

WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {{name: bench}}
spec:
  state: {{backend: sqlite, path: .pipeform/state.db}}
  providers:
    local: {{dataDir: .pipeform/data, maxConcurrentJobs: 4}}
{kubernetes}  defaults: {{provider: {provider}, labels: {{team: bench}}, resources: {{cpu: 1, memory: 1Gi}}}}
  pricing: {{currency: USD, cpuHour: 0.04, memoryGiBHour: 0.005}}
  registry: {{type: local}}
---
apiVersion: pipeform/v1
kind: Dataset
metadata: {{name: events}}
spec:
  source: {{uri: file://data/events.csv, format: csv}}
  schema:
    - {{name: user_id, type: int, nullable: false}}
    - {{name: day, type: int, nullable: false, min: 1, max: 31}}
    - {{name: spend, type: float, min: 0}}
    - {{name: clicks, type: int, min: 0}}
    - {{name: churned, type: int, nullable: false, allowed: [0, 1]}}
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {{name: events-features}}
spec:
  dataset: events
  entity: [user_id, day]
  label: {{column: churned}}
  split: {{type: temporal, column: day, validationFrom: 20}}
  features:
    - {{name: spend, transforms: [log1p, standardize]}}
    - {{name: clicks}}
"""

KUBERNETES = """\
    kubernetes:
      kubeconfig: {kubeconfig}
      namespace: {namespace}
      image: {{repository: registry.example.com/pipeform-trainer, digest: "{digest}"}}
      volume: {{claim: pipeform-data}}
      pollSeconds: 0.05
"""

QUOTA_AND_SECRET = """\
apiVersion: pipeform/v1
kind: Quota
metadata: {{name: q-{i}}}
spec: {{cpu: 4, memory: 8Gi, gpus: 0}}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {{name: s-{i}}}
spec: {{from: {{env: BENCH_TOKEN}}}}
"""

JOB = """\
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {{name: j-{i}}}
spec:
  features: events-features
  model: {{type: linear, task: binary-classification}}
  hyperparameters: {{epochs: 1, seed: {i}}}
  resources: {{cpu: 1, memory: 1Gi}}
  maxDuration: 1h
  env: {{TOKEN: {{secret: s-{i}}}}}
"""

CSV = "user_id,day,spend,clicks,churned\n" + "".join(
    f"{u},{d},{u * 1.5},{d},{(u + d) % 2}\n" for u in range(1, 4) for d in range(1, 31)
)


def write_tree(root: Path, provider: str, units: int, jobs: int, kubernetes: str = "") -> None:
    (root / "data").mkdir(parents=True)
    (root / "data" / "events.csv").write_text(CSV, encoding="utf-8")
    text = WORKSPACE.format(provider=provider, kubernetes=kubernetes)
    (root / "pipeform.yaml").write_text(text, encoding="utf-8")
    for start in range(0, max(units, jobs), 100):
        docs = [QUOTA_AND_SECRET.format(i=i) for i in range(start, min(start + 100, units))]
        docs += [JOB.format(i=i) for i in range(start, min(start + 100, jobs))]
        text = "---\n".join(docs)
        (root / f"units-{start // 100:03d}.yaml").write_text(text, encoding="utf-8")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPEFORM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(NO_COLOR="1", BENCH_TOKEN="bench-value", **(extra or {}))
    return env


def pipeform(*args: str) -> list[str]:
    return [sys.executable, "-c", BOOT, *args]


class Kubelet(threading.Thread):
    """Marks each new Job in the namespace succeeded, with the trainer's termination
    message for its run (the run id is on the pod template's labels)."""

    def __init__(self, server: KubeServer) -> None:
        super().__init__(daemon=True)
        self.server, self.done, self.finished = server, threading.Event(), 0

    def run(self) -> None:
        seen: set[str] = set()
        while not self.done.is_set():
            for job in self.server.objects("batch", "v1", "jobs", NAMESPACE):
                name = job["metadata"]["name"]
                if name in seen:
                    continue
                labels = job["spec"]["template"]["metadata"]["labels"]
                said = message("succeeded", labels["pipeform.dev/run-id"], metrics={"auc": 0.8})
                self.server.job_succeeded(NAMESPACE, name, message=said)
                seen.add(name)
                self.finished += 1
            time.sleep(0.02)


def set_up(root: Path, env: dict[str, str], server: KubeServer | None = None) -> tuple[float, int]:
    """Apply the tree from empty state, then plan it once (filling the caches); the apply's
    seconds and the API requests it made (the kubelet thread reads the store, not the API)."""
    if server is not None:
        server.reset_requests()
    applied = measure(pipeform("apply", "--auto-approve", "."), root, env=env).seconds
    made = len(server.requests) if server is not None else 0
    measure(pipeform("plan", "--detailed-exitcode", "."), root, env=env)
    return applied, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1000, help="Quotas and Secrets")
    parser.add_argument("--jobs", type=int, default=1000, help="TrainingJobs")
    parser.add_argument("--runs", type=int, default=5, help="timed plans of each tree")
    args = parser.parse_args()

    server = KubeServer().start()
    for namespace in ("default", NAMESPACE):
        server.add_namespace(namespace)
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-kube-") as tmp:
        work = Path(tmp)
        kubeconfig = write_kubeconfig(work / "kubeconfig", server.url, server.token)
        settings = KUBERNETES.format(kubeconfig=kubeconfig, namespace=NAMESPACE, digest=DIGEST)
        trees = {"kubernetes": work / "kubernetes", "local": work / "local"}
        write_tree(trees["kubernetes"], "kubernetes", args.units, args.jobs, settings)
        write_tree(trees["local"], "local", args.units, args.jobs)
        print(
            f"tree: 1 Dataset, 1 FeatureSet, {args.units} Quotas, {args.units} Secrets, "
            f"{args.jobs} TrainingJobs"
        )

        kubelet = Kubelet(server)
        kubelet.start()
        took, made = set_up(trees["kubernetes"], _env(), server)
        kubelet.done.set()
        print(
            f"  kubernetes: applied in {took:.1f} s, {made:,} API requests "
            f"({kubelet.finished} Jobs played)"
        )
        took, _ = set_up(
            trees["local"],
            _env({"PIPEFORM_TRAINER_COMMAND": f"{sys.executable} {FAKE_TRAINER}"}),
        )
        print(f"  local: applied in {took:.1f} s (fake trainer)")

        env = _env()
        times: dict[str, list[Run]] = {"kubernetes": [], "local": []}
        requests: list[collections.Counter[tuple[str, str, str]]] = []
        for _ in range(args.runs):
            for name, tree in trees.items():
                server.reset_requests()
                times[name].append(
                    measure(pipeform("plan", "--detailed-exitcode", "."), tree, env=env)
                )
                if name == "kubernetes":
                    requests.append(
                        collections.Counter(
                            (r.verb, r.resource, r.namespace or "-") for r in server.requests
                        )
                    )
        server.stop()

    print(f"\n== no-op plan, median of {args.runs} (spread) ==")
    medians = {}
    for name, runs in times.items():
        seconds = [r.seconds for r in runs]
        medians[name] = statistics.median(seconds)
        print(f"  {name:<11} {medians[name]:6.2f} s  ({min(seconds):.2f}-{max(seconds):.2f})")
    print(f"  kubernetes / local: {medians['kubernetes'] / medians['local']:.2f}x")
    print("\n== API requests of one kubernetes no-op plan (verb resource namespace: count) ==")
    counted = requests[-1]
    for (verb, resource, namespace), count in sorted(counted.items()):
        print(f"  {verb:<6} {resource:<16} {namespace:<8} {count}")
    same = all(r == counted for r in requests)
    print(f"  total {sum(counted.values())}" + ("" if same else " (the runs differed)"))


if __name__ == "__main__":
    main()
