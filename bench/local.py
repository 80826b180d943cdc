"""Benchmark what users run on the local provider against Terraform, interleaved in one run.

Workloads (each a spec tree realised by the local provider, the embedded default, beside
as many Terraform `terraform_data` resources wired the same way with references):

  quotas      N Quotas, 100 per file (--quotas, default 1,000): the no-op plan, and with
              --apply the apply creating them from empty state
  quickstart  specs/examples/quickstart as shipped (real data; the model is trained for
              real while setting up, about 15 s): the no-op plan
  shaped      K units of the quickstart's local kinds (--units, default 10: a Quota, a
              Secret, a Dataset over a 90-row CSV, a FeatureSet, a TrainingJob and a
              Budget each): the no-op plan. Setting up trains each unit's job with
              tests/training/fake_trainer.py (the trainer's contract without torch; a
              no-op plan never runs a trainer), or for real with --real-trainer

Every timed step runs --runs times (default 7) with the contenders alternating (pipeform,
each --variant, Terraform), so that a burst of load from elsewhere hits all of them. It
prints each one's median and spread, and the ratio of Terraform's median to each
pipeform's. A no-op plan must exit 0 with --detailed-exitcode, or the script stops.

    .venv/bin/python bench/local.py                                # about 2 minutes
    .venv/bin/python bench/local.py --workloads quotas --runs 11   # about 40 s
    .venv/bin/python bench/local.py --workloads quotas --apply --no-terraform
    .venv/bin/python bench/local.py --variant before=/tmp/old-checkout --no-terraform

`--variant NAME=DIR` adds pipeform run from another checkout's source (PYTHONPATH=DIR),
for A/B measurements of a change: each contender sets up its own trees (the spec cache is
keyed by the code, so two versions must not share a tree). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from plan import PYCACHE, Run, measure, pipeform_command, terraform_binary  # bench/plan.py

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "specs" / "examples" / "quickstart"
FAKE_TRAINER = ROOT / "tests" / "training" / "fake_trainer.py"
NOOP_QUOTAS_RATIO = 6.0  # terraform / pipeform on the no-op plan of 1,000 Quotas, at least
WORKLOADS = ("quotas", "quickstart", "shaped")
TERRAFORM = "terraform"

WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: bench}
spec:
  defaults: {provider: local, labels: {team: bench}, resources: {cpu: 1, memory: 1Gi}}
  providers: {local: {maxConcurrentJobs: 2}}
  pricing: {currency: USD, cpuHour: 0.04, memoryGiBHour: 0.005}
  registry: {type: local}
  policy: {requiredLabels: [team]}
"""

UNIT = """\
apiVersion: pipeform/v1
kind: Quota
metadata: {{name: q-{i}}}
spec: {{namespace: team-{i}, cpu: 4, memory: 8Gi, gpus: 0, concurrentJobs: 1}}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {{name: s-{i}}}
spec: {{from: {{env: BENCH_TOKEN}}, targets: [{{provider: local}}]}}
---
apiVersion: pipeform/v1
kind: Dataset
metadata: {{name: d-{i}}}
spec:
  source: {{uri: file://data/events.csv, format: csv}}
  schema:
    - {{name: user_id, type: int, nullable: false}}
    - {{name: day, type: int, nullable: false, min: 1, max: 31}}
    - {{name: country, type: string, allowed: [de, fr, us, jp]}}
    - {{name: age, type: float, min: 0, max: 120}}
    - {{name: spend, type: float, min: 0}}
    - {{name: clicks, type: int, min: 0}}
    - {{name: churned, type: int, nullable: false, allowed: [0, 1]}}
  validation: {{minRows: 3, maxNullFraction: {{"*": 0.1}}}}
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {{name: f-{i}}}
spec:
  dataset: d-{i}
  entity: [user_id, day]
  label: {{column: churned}}
  split: {{type: temporal, column: day, validationFrom: 20}}
  features:
    - {{name: age, transforms: [standardize]}}
    - {{name: spend, transforms: [log1p, standardize]}}
    - {{name: clicks}}
    - {{name: country, transforms: [{{type: onehot}}]}}
---
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {{name: j-{i}}}
spec:
  features: f-{i}
  model: {{type: mlp, task: binary-classification, hidden: [8]}}
  hyperparameters: {{epochs: 2, batchSize: 32, learningRate: 0.01, seed: {i}}}
  resources: {{cpu: 1, memory: 1Gi}}
  quota: q-{i}
  register: {{model: m-{i}, alias: champion}}
  env: {{TOKEN: {{secret: s-{i}}}}}
---
apiVersion: pipeform/v1
kind: Budget
metadata: {{name: b-{i}}}
spec: {{amount: 100, currency: USD, period: monthly, scope: {{labels: {{team: bench}}}}}}
"""

# The same graph as UNIT: each input carries about the same data, and references become
# attribute references that Terraform resolves.
TF_UNIT = """\
resource "terraform_data" "q_{i}" {{
  input = {{ namespace = "team-{i}", cpu = 4, memory = "8Gi", gpus = 0, jobs = 1 }}
}}
resource "terraform_data" "s_{i}" {{
  input = {{ env = "BENCH_TOKEN", targets = [{{ provider = "local" }}] }}
}}
resource "terraform_data" "d_{i}" {{
  input = {{
    uri    = "file://data/events.csv"
    schema = ["user_id", "day", "country", "age", "spend", "clicks", "churned"]
    rules  = {{ min_rows = 3, max_null = 0.1 }}
  }}
}}
resource "terraform_data" "f_{i}" {{
  input = {{
    dataset  = terraform_data.d_{i}.id
    entity   = ["user_id", "day"]
    split    = {{ column = "day", from = 20 }}
    features = ["age", "spend", "clicks", "country"]
  }}
}}
resource "terraform_data" "j_{i}" {{
  input = {{
    features = terraform_data.f_{i}.id
    quota    = terraform_data.q_{i}.id
    secret   = terraform_data.s_{i}.id
    model    = {{ type = "mlp", hidden = [8], epochs = 2, seed = {i} }}
  }}
}}
resource "terraform_data" "b_{i}" {{
  input = {{ amount = 100, currency = "USD", period = "monthly", team = "bench" }}
}}
"""

# specs/examples/quickstart's eight documents as terraform_data, wired as they are.
TF_QUICKSTART = """\
resource "terraform_data" "quota" { input = { namespace = "growth", cpu = 4, memory = "8Gi" } }
resource "terraform_data" "secret" { input = { env = "QUICKSTART_METRICS_TOKEN" } }
resource "terraform_data" "budget" { input = { amount = 100, thresholds = [50, 80, 100] } }
resource "terraform_data" "dataset" {
  input = { uri = "file://data/randhie.csv", columns = 26, min_rows = 20000 }
}
resource "terraform_data" "features" {
  input = { dataset = terraform_data.dataset.id, entity = ["zper", "year"], features = 21 }
}
resource "terraform_data" "job" {
  input = {
    features = terraform_data.features.id
    quota    = terraform_data.quota.id
    secret   = terraform_data.secret.id
    model    = { type = "mlp", hidden = [64, 32], epochs = 20 }
  }
}
resource "terraform_data" "alert" { input = { job = terraform_data.job.id } }
resource "terraform_data" "slo" { input = { job = terraform_data.job.id, objective = 95 } }
"""

CSV = "user_id,day,country,age,spend,clicks,churned\n" + "".join(
    f"{u},{d},{'defrusjp'[2 * (u % 4) : 2 * (u % 4) + 2]},{20 + u}.5,{u * 1.5},{d},{(u + d) % 2}\n"
    for u in range(1, 4)
    for d in range(1, 31)
)


@dataclass
class Contender:
    name: str
    source: Path | None  # PYTHONPATH for pipeform; None for Terraform
    times: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def is_terraform(self) -> bool:
        return self.source is None


# -- spec trees --------------------------------------------------------------------------


def write_quotas(root: Path, size: int, terraform: bool) -> None:
    root.mkdir(parents=True)
    if not terraform:
        (root / "pipeform.yaml").write_text(WORKSPACE, encoding="utf-8")
    for start in range(0, size, 100):
        stop = min(start + 100, size)
        if terraform:
            text = "".join(
                f'resource "terraform_data" "q_{i}" {{\n  input = {{ gpus = 1 }}\n}}\n'
                for i in range(start, stop)
            )
            (root / f"quotas_{start // 100:04d}.tf").write_text(text, encoding="utf-8")
        else:
            text = "---\n".join(
                f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q-{i}}}\n"
                "spec: {gpus: 1}\n"
                for i in range(start, stop)
            )
            (root / f"quotas-{start // 100:04d}.yaml").write_text(text, encoding="utf-8")


def write_shaped(root: Path, units: int, terraform: bool) -> None:
    root.mkdir(parents=True)
    if terraform:
        text = "".join(TF_UNIT.format(i=i) for i in range(units))
        (root / "units.tf").write_text(text, encoding="utf-8")
        return
    (root / "data").mkdir()
    (root / "data" / "events.csv").write_text(CSV, encoding="utf-8")
    (root / "pipeform.yaml").write_text(WORKSPACE, encoding="utf-8")
    for start in range(0, units, 10):
        text = "---\n".join(UNIT.format(i=i) for i in range(start, min(start + 10, units)))
        (root / f"units-{start // 10:04d}.yaml").write_text(text, encoding="utf-8")


def write_quickstart(root: Path, terraform: bool) -> None:
    if terraform:
        root.mkdir(parents=True)
        (root / "main.tf").write_text(TF_QUICKSTART, encoding="utf-8")
    else:
        shutil.copytree(QUICKSTART, root, ignore=shutil.ignore_patterns(".pipeform"))


# -- running -----------------------------------------------------------------------------


def _env(contender: Contender, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYCACHE)
    env.update(CHECKPOINT_DISABLE="1", NO_COLOR="1", TF_IN_AUTOMATION="1")
    env.update(BENCH_TOKEN="bench-value", QUICKSTART_METRICS_TOKEN="bench-value")
    if contender.source is not None:
        env["PYTHONPATH"] = str(contender.source)
    return {**env, **(extra or {})}


def run(
    contender: Contender,
    args: list[str],
    cwd: Path,
    expect: tuple[int, ...] = (0,),
    extra_env: dict[str, str] | None = None,
) -> Run:
    """One timed run of the contender's command (the script stops on a wrong exit code)."""
    return measure(args, cwd, expect, env=_env(contender, extra_env))


def apply_args(contender: Contender, terraform: str) -> list[str]:
    if contender.is_terraform:
        return [terraform, "apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=10"]
    return [*pipeform_command(), "apply", "--auto-approve", "."]


def plan_args(contender: Contender, terraform: str) -> list[str]:
    if contender.is_terraform:
        return [terraform, "plan", "-detailed-exitcode", "-input=false", "-no-color"]
    return [*pipeform_command(), "plan", "--detailed-exitcode", "."]


def set_up(
    contender: Contender, work: Path, workload: str, args: argparse.Namespace, terraform: str
) -> Path:
    """The contender's applied tree for a workload, with one untimed no-op plan done (it
    fills the spec cache and bytecode caches)."""
    tree = work / f"{contender.name}-{workload}"
    is_tf = contender.is_terraform
    if workload == "quotas":
        write_quotas(tree, args.quotas, is_tf)
    elif workload == "shaped":
        write_shaped(tree, args.units, is_tf)
    else:
        write_quickstart(tree, is_tf)
    extra = {}
    if workload == "shaped" and not args.real_trainer:
        extra["PIPEFORM_TRAINER_COMMAND"] = f"{sys.executable} {FAKE_TRAINER}"
    if is_tf:
        init = [terraform, "init", "-input=false", "-no-color"]
        run(contender, init, tree)
    started = time.perf_counter()
    run(contender, apply_args(contender, terraform), tree, extra_env=extra)
    run(contender, plan_args(contender, terraform), tree)
    print(f"  {contender.name}: {workload} set up in {time.perf_counter() - started:.1f} s")
    return tree


def timed_rounds(
    contenders: list[Contender], trees: dict[str, Path], step: str, runs: int, terraform: str
) -> None:
    for _ in range(runs):
        for contender in contenders:
            args = plan_args(contender, terraform)
            contender.times.setdefault(step, []).append(run(contender, args, trees[contender.name]))


def apply_rounds(
    contenders: list[Contender], work: Path, args: argparse.Namespace, terraform: str
) -> None:
    """Apply creating N Quotas from empty state, in a fresh tree each time (Terraform's
    apply of 1,000 takes about 30 s here, so it runs --terraform-applies times)."""
    for index in range(args.runs):
        for contender in contenders:
            if contender.is_terraform and index >= args.terraform_applies:
                continue
            tree = work / f"apply-{contender.name}-{index}"
            write_quotas(tree, args.quotas, contender.is_terraform)
            if contender.is_terraform:
                run(contender, [terraform, "init", "-input=false", "-no-color"], tree)
            done = run(contender, apply_args(contender, terraform), tree)
            contender.times.setdefault("apply", []).append(done)
            shutil.rmtree(tree)


# -- reporting ---------------------------------------------------------------------------


def report(contenders: list[Contender], step: str, label: str) -> None:
    print(f"== {label} ==")
    peer = next((c for c in contenders if c.is_terraform and step in c.times), None)
    for contender in contenders:
        runs = contender.times.get(step)
        if not runs:
            continue
        seconds = sorted(r.seconds for r in runs)
        line = (
            f"  {contender.name:<12} median {statistics.median(seconds):7.3f} s"
            f"  (min {seconds[0]:.3f}, max {seconds[-1]:.3f}, {len(seconds)} runs,"
            f" peak {max(r.rss_mib for r in runs):.0f} MiB)"
        )
        if peer is not None and not contender.is_terraform:
            theirs = statistics.median(r.seconds for r in peer.times[step])
            line += f"  terraform / this: {theirs / statistics.median(seconds):.1f}x"
        print(line)
    if step == "quotas" and peer is not None:
        print(
            f"  target: a no-op plan of 1,000 Quotas at least {NOOP_QUOTAS_RATIO:.0f}x Terraform's"
        )
    print()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="*", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--quotas", type=int, default=1_000, metavar="N")
    parser.add_argument("--units", type=int, default=10, metavar="K")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per contender and step")
    parser.add_argument("--apply", action="store_true", help="also time applying N Quotas")
    parser.add_argument("--terraform-applies", type=int, default=1, metavar="R")
    parser.add_argument("--real-trainer", action="store_true")
    parser.add_argument("--no-terraform", action="store_true")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR")
    return parser.parse_args()


def main() -> None:
    args = parse()
    contenders = [Contender("pipeform", ROOT)]
    for variant in args.variant:
        name, _, source = variant.partition("=")
        contenders.append(Contender(name, Path(source).resolve()))
    terraform = terraform_binary()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load}")
    if terraform is not None and not args.no_terraform:
        contenders.append(Contender(TERRAFORM, None))
    else:
        print("terraform: skipped" if args.no_terraform else "terraform: not installed")
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-local-") as tmp:
        work = Path(tmp)
        PYCACHE["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        if terraform is not None:
            (work / "terraformrc").write_text("", encoding="utf-8")
            os.environ["TF_CLI_CONFIG_FILE"] = str(work / "terraformrc")
        labels = {
            "quotas": f"no-op plan of {args.quotas:,} Quotas",
            "quickstart": "no-op plan of the quickstart (8 resources)",
            "shaped": f"no-op plan of {args.units} quickstart-shaped units ({args.units * 6} resources)",
        }
        for workload in args.workloads:
            print(f"-- {labels[workload]}: setting up")
            trees = {c.name: set_up(c, work, workload, args, terraform or "") for c in contenders}
            timed_rounds(contenders, trees, workload, args.runs, terraform or "")
            report(contenders, workload, labels[workload])
        if args.apply:
            print(f"-- apply creating {args.quotas:,} Quotas")
            apply_rounds(contenders, work, args, terraform or "")
            report(contenders, "apply", f"apply creating {args.quotas:,} Quotas from empty state")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
