"""Benchmark `pipeform validate` on large spec trees and `pipeform --help` start-up.

Generates realistic spec trees (chains of Quota, Secret, Dataset, FeatureSet,
TrainingJob and Alert documents with references between them, about 80 documents per
file) of 1,000 and 10,000 documents in a temporary directory. It times `pipeform
validate` on each as a subprocess (best of 3) and checks that the cost per document
stays flat from 1k to 10k. It also times `pipeform --help` (best of 10) and reports
whether any heavy library got imported. When `terraform` is on PATH, it times
`terraform validate` on the same number of `terraform_data` resources, wired the same
way, as a peer.

    .venv/bin/python bench/validate.py                 # or: make bench
    .venv/bin/python bench/validate.py --sizes 1000    # quicker

A benchmark, not a test: it prints figures next to their targets and exits 0 unless
a generated tree fails to validate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HELP_TARGET_S = 0.3
VALIDATE_10K_TARGET_S = 5.0
HEAVY = ("torch", "pyarrow", "boto3", "kubernetes", "mlflow")
UNITS_PER_FILE = 10  # 8 documents per unit: 80 documents per file
DOCS_PER_UNIT = 8

WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: bench}
spec:
  defaults: {provider: local, labels: {owner: bench}, resources: {cpu: 2, memory: 4Gi}}
  pricing: {currency: USD, cpuHour: 0.04, gpuHour: {h100: 4.00}}
  policy: {requiredLabels: [team]}
"""

UNIT = """\
apiVersion: pipeform/v1
kind: Quota
metadata: {{name: q-{i}, labels: {{team: t{team}}}}}
spec: {{namespace: team-{team}, cpu: 16, memory: 64Gi, gpus: 2, concurrentJobs: 2}}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {{name: s-{i}, labels: {{team: t{team}}}}}
spec:
  from: {{env: TOKEN_{i}}}
  targets: [{{provider: local}}]
---
apiVersion: pipeform/v1
kind: Dataset
metadata: {{name: d-{i}, labels: {{team: t{team}, tier: gold}}}}
spec:
  source: {{uri: file://data/events.csv, format: csv}}
  schema:
    - {{name: user_id, type: int, nullable: false}}
    - {{name: day, type: int, nullable: false, min: 1, max: 31}}
    - {{name: country, type: string, allowed: [de, fr, us, jp]}}
    - {{name: age, type: float, min: 0, max: 120}}
    - {{name: spend, type: float, min: 0}}
    - {{name: clicks, type: int, min: 0}}
    - {{name: signup, type: timestamp}}
    - {{name: churned, type: int, nullable: false, allowed: [0, 1]}}
  validation:
    minRows: 3
    maxNullFraction: {{"*": 0.1}}
    drift: {{maxPsi: 0.2, bins: 10}}
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {{name: f-{i}, labels: {{team: t{team}}}}}
spec:
  dataset: d-{i}
  entity: [user_id, day]
  label: {{column: churned}}
  split: {{type: temporal, column: day, validationFrom: 20}}
  features:
    - {{name: age, transforms: [{{type: fillna, strategy: median}}, standardize]}}
    - {{name: spend, transforms: [log1p, standardize]}}
    - {{name: clicks, transforms: [{{type: clip, max: 100}}]}}
    - {{name: country, transforms: [{{type: onehot}}]}}
---
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {{name: j-{i}-mlp, labels: {{team: t{team}}}}}
spec:
  features: f-{i}
  model: {{type: mlp, task: binary-classification, hidden: [64, 32], dropout: 0.1}}
  hyperparameters: {{epochs: 10, batchSize: 256, learningRate: 0.001, seed: {i}}}
  resources: {{cpu: 2, memory: 4Gi}}
  checkpoint: {{every: 10m}}
  maxDuration: 1h
  quota: q-{i}
  gates: [{{metric: auc, min: 0.6}}]
  register: {{model: m-{i}, alias: champion}}
  env: {{TOKEN: {{secret: s-{i}}}, LOG_FORMAT: {{value: json}}}}
---
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {{name: j-{i}-linear, labels: {{team: t{team}}}}}
spec:
  features: f-{i}
  model: {{type: linear, task: binary-classification}}
  hyperparameters: {{epochs: 5, seed: {i}}}
  quota: q-{i}
  gates: [{{metric: auc, min: 0.55}}]
---
apiVersion: pipeform/v1
kind: Alert
metadata: {{name: a-{i}-mlp, labels: {{team: t{team}}}}}
spec:
  template: {{type: training-failed, job: j-{i}-mlp}}
  severity: critical
  annotations: {{summary: j-{i}-mlp failed}}
---
apiVersion: pipeform/v1
kind: Alert
metadata: {{name: a-{i}-stale, labels: {{team: t{team}}}}}
spec:
  template: {{type: data-stale, dataset: d-{i}, maxAge: 24h}}
  for: 15m
"""

# The same graph as UNIT, as terraform_data resources: each one's input carries about the
# same data, and references become attribute references Terraform must resolve.
TF_UNIT = """\
resource "terraform_data" "q_{i}" {{
  input = {{ namespace = "team-{team}", cpu = 16, memory = "64Gi", gpus = 2, jobs = 2 }}
}}
resource "terraform_data" "s_{i}" {{
  input = {{ env = "TOKEN_{i}", targets = [{{ provider = "local" }}] }}
}}
resource "terraform_data" "d_{i}" {{
  input = {{
    uri    = "file://data/events.csv"
    format = "csv"
    schema = [
      {{ name = "user_id", type = "int", nullable = false }},
      {{ name = "day", type = "int", min = 1, max = 31 }},
      {{ name = "country", type = "string", allowed = ["de", "fr", "us", "jp"] }},
      {{ name = "age", type = "float", min = 0, max = 120 }},
      {{ name = "spend", type = "float", min = 0 }},
      {{ name = "clicks", type = "int", min = 0 }},
      {{ name = "signup", type = "timestamp" }},
      {{ name = "churned", type = "int", allowed = [0, 1] }},
    ]
    validation = {{ min_rows = 3, max_null = 0.1, max_psi = 0.2 }}
  }}
}}
resource "terraform_data" "f_{i}" {{
  input = {{
    dataset  = terraform_data.d_{i}.id
    entity   = ["user_id", "day"]
    label    = "churned"
    split    = {{ type = "temporal", column = "day", from = 20 }}
    features = ["age", "spend", "clicks", "country"]
  }}
}}
resource "terraform_data" "j_{i}_mlp" {{
  input = {{
    features = terraform_data.f_{i}.id
    quota    = terraform_data.q_{i}.id
    secret   = terraform_data.s_{i}.id
    model    = {{ type = "mlp", hidden = [64, 32], dropout = 0.1 }}
    hparams  = {{ epochs = 10, batch = 256, lr = 0.001, seed = {i} }}
    gates    = [{{ metric = "auc", min = 0.6 }}]
  }}
}}
resource "terraform_data" "j_{i}_linear" {{
  input = {{ features = terraform_data.f_{i}.id, quota = terraform_data.q_{i}.id, epochs = 5 }}
}}
resource "terraform_data" "a_{i}_mlp" {{
  input = {{ job = terraform_data.j_{i}_mlp.id, severity = "critical" }}
}}
resource "terraform_data" "a_{i}_stale" {{
  input = {{ dataset = terraform_data.d_{i}.id, max_age = "24h", for = "15m" }}
}}
"""

CSV = "user_id,day,country,age,spend,clicks,signup,churned\n" + "".join(
    f"{u},{d},de,{20 + u}.5,{u * 1.5},{d},2024-01-{d:02d}T00:00:00Z,{u % 2}\n"
    for u in range(1, 4)
    for d in range(1, 31)
)


def write_tree(root: Path, documents: int) -> None:
    """A spec tree of exactly `documents` resources (plus the Workspace)."""
    root.mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "events.csv").write_text(CSV, encoding="utf-8")
    (root / "pipeform.yaml").write_text(WORKSPACE, encoding="utf-8")
    units = -(-documents // DOCS_PER_UNIT)
    for start in range(0, units, UNITS_PER_FILE):
        chunk = [
            UNIT.format(i=i, team=i % 20) for i in range(start, min(start + UNITS_PER_FILE, units))
        ]
        (root / f"team-{start // UNITS_PER_FILE:04d}.yaml").write_text(
            "---\n".join(chunk), encoding="utf-8"
        )
    extra = units * DOCS_PER_UNIT - documents
    if extra:  # trim the last file to the exact count
        last = sorted(root.glob("team-*.yaml"))[-1]
        docs = last.read_text(encoding="utf-8").split("---\n")
        last.write_text("---\n".join(docs[: len(docs) - extra]), encoding="utf-8")


def write_terraform(root: Path, resources: int) -> None:
    root.mkdir(parents=True)
    units = -(-resources // DOCS_PER_UNIT)
    for start in range(0, units, UNITS_PER_FILE):
        chunk = [
            TF_UNIT.format(i=i, team=i % 20)
            for i in range(start, min(start + UNITS_PER_FILE, units))
        ]
        (root / f"team_{start // UNITS_PER_FILE:04d}.tf").write_text("".join(chunk), "utf-8")


def best_of(runs: int, command: list[str], cwd: Path | None = None) -> float:
    """The fastest wall-clock time of `runs` runs; exits when the command fails."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=_env())
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        best = min(best, elapsed)
    return best


def _env() -> dict[str, str]:
    return {**os.environ, "CHECKPOINT_DISABLE": "1", "NO_COLOR": "1", "TF_IN_AUTOMATION": "1"}


def pipeform_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeform"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from reconciler.cli import main; main()"]


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


def heavy_imports(args: list[str]) -> list[str]:
    """Heavy libraries present in sys.modules after running pipeform with args."""
    probe = (
        "import json, sys\n"
        "from reconciler.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_env())
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


def slowest_imports(count: int) -> list[tuple[float, str]]:
    """The modules with the largest cumulative import time for `pipeform --help`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from reconciler.cli import main"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1e6, parts[2].rstrip()))
    top = [(t, name) for t, name in rows if not name.startswith("   ")]
    return sorted(top, reverse=True)[:count]


def bench_startup() -> None:
    print("== start-up: pipeform --help (best of 10) ==")
    seconds = best_of(10, [*pipeform_command(), "--help"])
    print(f"  {seconds:.3f} s   target < {HELP_TARGET_S} s: {verdict(seconds, HELP_TARGET_S)}")
    quickstart = str(Path(__file__).resolve().parents[1] / "specs" / "examples" / "quickstart")
    probes = (("--help", ["--help"]), ("validate <quickstart>", ["validate", quickstart]))
    for label, args in probes:
        found = heavy_imports(args)
        print(f"  heavy imports after `pipeform {label}`: {', '.join(found) or 'none'}")
    print("  slowest top-level imports (cumulative):")
    for seconds_taken, name in slowest_imports(5):
        print(f"    {seconds_taken * 1000:7.1f} ms  {name.strip()}")


def bench_validate(work: Path, sizes: list[int], runs: int) -> dict[int, float]:
    print(f"== pipeform validate (best of {runs}) ==")
    command = pipeform_command()
    write_tree(work / "tiny", 1)
    fixed = best_of(max(runs, 5), [*command, "validate", str(work / "tiny")])
    print(f"  {'1 document':>16}: {fixed:7.3f} s   (fixed cost: start-up and imports)")
    times: dict[int, float] = {}
    for size in sizes:
        tree = work / f"specs-{size}"
        write_tree(tree, size)
        files = len(list(tree.glob("*.yaml")))
        seconds = best_of(runs, [*command, "validate", str(tree)])
        times[size] = seconds
        line = f"  {size:>6,} documents: {seconds:7.3f} s   {size / seconds:9,.0f} documents/s"
        line += f"   ({files} files, {size / (files - 1):.0f} documents per file)"
        if size == 10_000:
            target = VALIDATE_10K_TARGET_S
            line += f"   target < {target:.0f} s: {verdict(seconds, target)}"
        print(line)
    linearity(times, fixed)
    return times


def linearity(times: dict[int, float], fixed: float) -> None:
    if 1_000 not in times or 10_000 not in times:
        return
    raw = (times[10_000] / 10_000) / (times[1_000] / 1_000)
    marginal = ((times[10_000] - fixed) / 10_000) / ((times[1_000] - fixed) / 1_000)
    shape = "linear" if marginal < 1.3 else "WORSE than linear"
    print(
        f"  per-document time, 10k / 1k: {raw:.2f}x measured; {marginal:.2f}x net of the fixed cost"
    )
    print(f"    (1.00x is linear; under 1.3x counts as linear): {shape}")


def bench_terraform(work: Path, times: dict[int, float], runs: int) -> None:
    print(f"== peer: terraform validate on terraform_data resources (best of {runs}) ==")
    terraform = shutil.which("terraform")
    if terraform is None:
        print("  skipped: terraform is not on PATH")
        return
    rc = work / "terraformrc"
    rc.write_text("", encoding="utf-8")
    os.environ["TF_CLI_CONFIG_FILE"] = str(rc)
    version = subprocess.run([terraform, "version"], capture_output=True, text=True, env=_env())
    print(f"  {version.stdout.splitlines()[0]}")
    for size, ours in times.items():
        tf_dir = work / f"terraform-{size}"
        write_terraform(tf_dir, size)
        init = subprocess.run(
            [terraform, "init", "-input=false", "-no-color", "-backend=false"],
            cwd=tf_dir,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        if init.returncode != 0:
            print(f"  skipped: `terraform init` failed (it may need network):\n{init.stderr}")
            return
        theirs = best_of(runs, [terraform, "validate", "-no-color"], cwd=tf_dir)
        units = -(-size // DOCS_PER_UNIT) * DOCS_PER_UNIT
        print(
            f"  {units:>6,} resources: {theirs:7.3f} s   {units / theirs:9,.0f} resources/s"
            f"   pipeform/terraform time: {ours / theirs:.2f}x"
        )


def timed(label: str, step: Callable[[], object]) -> None:
    start = time.perf_counter()
    step()
    print(f"  ({label} took {time.perf_counter() - start:.1f} s in all)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per timing (best is kept)")
    parser.add_argument("--no-terraform", action="store_true", help="skip the Terraform peer")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {sys.platform}\n")
    timed("start-up", bench_startup)
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-") as tmp:
        work = Path(tmp)
        times: dict[int, float] = {}
        timed("validate", lambda: times.update(bench_validate(work, args.sizes, args.runs)))
        if not args.no_terraform:
            timed("terraform", lambda: bench_terraform(work, times, args.runs))


if __name__ == "__main__":
    main()
