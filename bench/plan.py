"""Benchmark `pipeform apply` and `pipeform plan` on 100, 1,000 and 10,000 resources.

Generates spec trees of N Quota documents realised by the fake provider (one JSON file
per object in `<tree>/.pipeform/fake`, so the provider costs next to nothing and what is
measured is the engine), in two shapes: `flat` (independent resources) and `chains`
(chains of ten linked with metadata.dependsOn, as a pipeline's stages are). For each N
and shape it runs the real CLI as subprocesses and measures wall time and peak RSS of:

  (a) `pipeform apply --auto-approve` creating N resources from empty state (best of 1),
  (b) a no-op `pipeform plan` (best of 3),
  (c) `pipeform plan` after editing one document (best of 3).

It runs the same three steps with Terraform on N `terraform_data` resources (built in, so
`terraform init` needs no network), wired the same way with depends_on, and prints
terraform time / pipeform time next to the targets: a no-op plan of 1,000 at least 5x
faster than Terraform, a no-op plan of 10,000 under 2 s, an apply creating 1,000 at least
10x faster than Terraform, and costs linear in N. Terraform's apply grows faster than
linearly (minutes at 10,000), so it is skipped above `--max-terraform` (default 1,000).

    .venv/bin/python bench/plan.py                               # about 15 minutes
    .venv/bin/python bench/plan.py --sizes 1000 --shapes flat    # quicker
    .venv/bin/python bench/plan.py --max-terraform 10000         # Terraform at 10k too

A benchmark, not a test: it prints figures next to their targets and exits 0 unless a
command fails or a plan does not show what it should.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCS_PER_FILE = 100
CHAIN = 10  # resources per dependsOn chain in the `chains` shape
PLAN_RUNS = 3
NOOP_1K_RATIO = 5.0  # terraform / pipeform, at least
NOOP_10K_TARGET_S = 2.0
APPLY_1K_RATIO = 10.0  # terraform / pipeform, at least
LINEAR_GROWTH = 1.3  # per-resource time growth per 10x in N, net of fixed cost, at most
#: A growth from N is judged only when the per-resource part is at least this share of N's
#: time: below it, the run-to-run spread of the fixed cost taken off is larger than the part.
SIGNAL_MIN = 0.4
STEPS = ("apply", "noop", "change")
STEP_LABELS = {
    "apply": "apply, creating N",
    "noop": "plan, no changes",
    "change": "plan, one change",
}
SHAPES = {"flat": "independent Quotas", "chains": f"Quotas in dependsOn chains of {CHAIN}"}

WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: bench}
spec:
  defaults: {provider: fake}
"""


@dataclass
class Run:
    seconds: float
    rss_mib: float


@dataclass
class Results:
    """Best wall time and peak RSS per (tool, shape, N, step)."""

    runs: dict[tuple[str, str, int, str], Run] = field(default_factory=dict)
    fixed: dict[tuple[str, str], float] = field(default_factory=dict)  # (tool, step) -> s

    def get(self, tool: str, shape: str, size: int, step: str) -> Run | None:
        return self.runs.get((tool, shape, size, step))


# -- spec trees --------------------------------------------------------------------------


def _depends(shape: str, i: int) -> int | None:
    """The index resource i depends on, if any."""
    return i - 1 if shape == "chains" and i % CHAIN else None


def _pipeform_doc(shape: str, i: int, gpus: int) -> str:
    dep = _depends(shape, i)
    extra = f", dependsOn: [Quota/q-{dep}]" if dep is not None else ""
    return (
        f"apiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q-{i}{extra}}}\n"
        f"spec: {{gpus: {gpus}}}\n"
    )


def _terraform_doc(shape: str, i: int, gpus: int) -> str:
    dep = _depends(shape, i)
    extra = f"  depends_on = [terraform_data.q_{dep}]\n" if dep is not None else ""
    return f'resource "terraform_data" "q_{i}" {{\n  input = {{ gpus = {gpus} }}\n{extra}}}\n'


def _write_file(root: Path, tool: str, shape: str, size: int, start: int, changed: int) -> None:
    stop = min(start + DOCS_PER_FILE, size)
    gpus = [2 if i == changed else 1 for i in range(start, stop)]
    index = start // DOCS_PER_FILE
    if tool == "pipeform":
        docs = [_pipeform_doc(shape, i, g) for i, g in zip(range(start, stop), gpus, strict=True)]
        (root / f"quotas-{index:04d}.yaml").write_text("---\n".join(docs), encoding="utf-8")
    else:
        docs = [_terraform_doc(shape, i, g) for i, g in zip(range(start, stop), gpus, strict=True)]
        (root / f"quotas_{index:04d}.tf").write_text("".join(docs), encoding="utf-8")


def write_tree(root: Path, tool: str, shape: str, size: int) -> None:
    """N resources for tool ("pipeform" or "terraform"), about 100 per file."""
    root.mkdir(parents=True)
    if tool == "pipeform":
        (root / "pipeform.yaml").write_text(WORKSPACE, encoding="utf-8")
    for start in range(0, size, DOCS_PER_FILE):
        _write_file(root, tool, shape, size, start, changed=-1)


def edit_one(root: Path, tool: str, shape: str, size: int) -> None:
    """Change one resource in the middle (gpus 1 -> 2), rewriting only its file."""
    changed = size // 2
    start = changed - changed % DOCS_PER_FILE
    _write_file(root, tool, shape, size, start, changed)


# -- running commands --------------------------------------------------------------------


#: Where pipeform's bytecode is cached during the run (set by main): an installed package
#: has its .pyc files, so a run with PYTHONDONTWRITEBYTECODE set would time compiling too.
PYCACHE: dict[str, str] = {}


def _env() -> dict[str, str]:
    dropped = ("PIPEFORM_FAKE_STORE", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, **PYCACHE, "CHECKPOINT_DISABLE": "1", "NO_COLOR": "1", "TF_IN_AUTOMATION": "1"}


def measure(
    command: list[str],
    cwd: Path,
    expect: tuple[int, ...] = (0,),
    says: str | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Wall time and peak RSS of one run (os.wait4 gives this child's own rusage).

    Exits when the exit code is not in `expect` or the output does not contain `says`.
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env or _env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
        if proc.returncode not in expect or (says is not None and says not in text):
            wanted = f" (expected {expect}, saying {says!r})" if says else ""
            sys.exit(
                f"{' '.join(command)} in {cwd} exited {proc.returncode}{wanted}:\n{text[-4000:]}"
            )
    return Run(elapsed, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


def best_of(
    runs: int,
    command: list[str],
    cwd: Path,
    expect: tuple[int, ...] = (0,),
    says: str | None = None,
) -> Run:
    """The fastest wall time of `runs` runs, with the largest peak RSS among them."""
    done = [measure(command, cwd, expect, says) for _ in range(runs)]
    return Run(min(r.seconds for r in done), max(r.rss_mib for r in done))


def pipeform_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeform"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from reconciler.cli import main; main()"]


def terraform_binary() -> str | None:
    found = Path("/usr/local/bin/terraform")
    return str(found) if found.exists() else shutil.which("terraform")


# -- the steps ---------------------------------------------------------------------------


def pipeform_steps(work: Path, shape: str, size: int) -> dict[str, Run]:
    tree = work / f"pipeform-{shape}-{size}"
    write_tree(tree, "pipeform", shape, size)
    pf = pipeform_command()
    runs = {"apply": measure([*pf, "apply", "--auto-approve", "."], tree)}
    created = len(list((tree / ".pipeform" / "fake").glob("Quota__*.json")))
    if created != size:
        sys.exit(f"pipeform apply created {created} objects, not {size}, in {tree}")
    plan = [*pf, "plan", "--detailed-exitcode", "."]
    runs["noop"] = best_of(PLAN_RUNS, plan, tree, expect=(0,))
    edit_one(tree, "pipeform", shape, size)
    runs["change"] = best_of(PLAN_RUNS, plan, tree, expect=(2,), says="1 to change")
    return runs


def terraform_steps(work: Path, terraform: str, shape: str, size: int) -> dict[str, Run] | str:
    """The three steps, or why they were skipped."""
    root = work / f"terraform-{shape}-{size}"
    write_tree(root, "terraform", shape, size)
    init = subprocess.run(
        [terraform, "init", "-input=false", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    if init.returncode != 0:
        return f"`terraform init` failed (it may need network): {init.stderr.strip()[:500]}"
    common = ["-input=false", "-lock=true", "-parallelism=10", "-no-color"]
    runs = {"apply": measure([terraform, "apply", "-auto-approve", *common], root)}
    plan = [terraform, "plan", "-detailed-exitcode", *common]
    runs["noop"] = best_of(PLAN_RUNS, plan, root, expect=(0,))
    edit_one(root, "terraform", shape, size)
    runs["change"] = best_of(PLAN_RUNS, plan, root, expect=(2,), says="1 to change")
    return runs


def fixed_costs(work: Path, results: Results) -> None:
    """What one resource costs: start-up, imports, state and lock; netted out of linearity."""
    tree = work / "pipeform-fixed"
    applies = []
    for _ in range(PLAN_RUNS):
        shutil.rmtree(tree, ignore_errors=True)
        write_tree(tree, "pipeform", "flat", 1)
        applies.append(measure([*pipeform_command(), "apply", "--auto-approve", "."], tree).seconds)
    results.fixed["pipeform", "apply"] = min(applies)
    plan = [*pipeform_command(), "plan", "."]
    noop = best_of(5, plan, tree).seconds
    results.fixed["pipeform", "noop"] = results.fixed["pipeform", "change"] = noop
    print(f"  pipeform, 1 resource: apply {min(applies):.3f} s, plan {noop:.3f} s")


# -- reporting ---------------------------------------------------------------------------


def _ratio(theirs: Run | None, ours: Run | None) -> str:
    if theirs is None or ours is None:
        return "-"
    return f"{theirs.seconds / ours.seconds:.1f}x"


def _cell(run: Run | None) -> str:
    return f"{run.seconds:9.3f} {run.rss_mib:7.0f}" if run else f"{'-':>9} {'-':>7}"


def print_table(results: Results, shapes: list[str], sizes: list[int]) -> None:
    print("== results: seconds and peak RSS (MiB); tf/pf = terraform time / pipeform time ==")
    head = f"  {'shape':<7} {'step':<18} {'N':>7}  {'pipeform s':>10} {'MiB':>6}"
    print(f"{head}  {'terraform s':>11} {'MiB':>6}  {'tf/pf':>6}  pf ms/resource")
    for shape in shapes:
        for step in STEPS:
            for size in sizes:
                ours = results.get("pipeform", shape, size, step)
                theirs = results.get("terraform", shape, size, step)
                per = f"{ours.seconds / size * 1000:8.3f}" if ours else "-"
                print(
                    f"  {shape:<7} {STEP_LABELS[step]:<18} {size:>7,}  {_cell(ours)}"
                    f"   {_cell(theirs)}  {_ratio(theirs, ours):>6}  {per}"
                )
        print()


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_targets(results: Results, shapes: list[str], sizes: list[int]) -> None:
    print("== targets ==")
    for shape in shapes:
        checks = (
            ("noop", 1_000, "no-op plan of 1,000: terraform / pipeform", NOOP_1K_RATIO),
            ("apply", 1_000, "apply creating 1,000: terraform / pipeform", APPLY_1K_RATIO),
        )
        for step, size, label, target in checks:
            ours = results.get("pipeform", shape, size, step)
            theirs = results.get("terraform", shape, size, step)
            if ours is None or theirs is None:
                print(f"  {shape:<7} {label}: not measured")
                continue
            ratio = theirs.seconds / ours.seconds
            print(
                f"  {shape:<7} {label}: {ratio:.1f}x   target >= {target:.0f}x: {_verdict(ratio >= target)}"
            )
        ours = results.get("pipeform", shape, 10_000, "noop")
        label = "no-op plan of 10,000"
        if ours is None:
            print(f"  {shape:<7} {label}: not measured")
        else:
            ok = ours.seconds < NOOP_10K_TARGET_S
            print(
                f"  {shape:<7} {label}: {ours.seconds:.3f} s   target < {NOOP_10K_TARGET_S:.0f} s: {_verdict(ok)}"
            )
    print_linearity(results, shapes, sizes)


def print_linearity(results: Results, shapes: list[str], sizes: list[int]) -> None:
    if len(sizes) < 2:
        return
    print(
        f"  linearity: pipeform ms per resource at N = {' -> '.join(f'{s:,}' for s in sizes)},"
        " net of the 1-resource fixed cost (raw in brackets);"
    )
    print(f"    growth per 10x in N (1.00x is linear; target < {LINEAR_GROWTH}x):")
    for shape in shapes:
        for step in STEPS:
            runs = [results.get("pipeform", shape, s, step) for s in sizes]
            if any(r is None for r in runs):
                continue
            fixed = results.fixed.get(("pipeform", step), 0.0)
            seconds = [r.seconds for r in runs if r is not None]
            raw = [t / s for t, s in zip(seconds, sizes, strict=True)]
            net = [max(t - fixed, 1e-9) / s for t, s in zip(seconds, sizes, strict=True)]
            growth = [
                (b / a) ** (1 / math.log10(m / n))
                for (a, b), (n, m) in zip(
                    itertools.pairwise(net), itertools.pairwise(sizes), strict=True
                )
            ]
            judged = [(t - fixed) / t >= SIGNAL_MIN for t in seconds[:-1]]  # from each N
            kept = [g for g, ok in zip(growth, judged, strict=True) if ok]
            verdict = (
                "fixed cost dominates, not judged (count instructions instead)"
                if not kept
                else "linear"
                if all(g < LINEAR_GROWTH for g in kept)
                else "WORSE than linear"
            )
            print(
                f"    {shape:<7} {STEP_LABELS[step]:<18} "
                + " -> ".join(f"{t * 1000:.3f}" for t in net)
                + "  ("
                + " -> ".join(f"{t * 1000:.3f}" for t in raw)
                + ")  growth "
                + ", ".join(
                    f"{g:.2f}x" + ("" if ok else "*") for g, ok in zip(growth, judged, strict=True)
                )
                + f": {verdict}"
            )
    print(
        f"    (* not judged: at the smaller N the per-resource part is under {SIGNAL_MIN:.0%}"
        " of the time)"
    )


def timed(label: str, start: float) -> None:
    print(f"  ({label} took {time.perf_counter() - start:.1f} s in all)\n")


# -- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument(
        "--max-terraform",
        type=int,
        default=1_000,
        metavar="N",
        help="skip Terraform for sizes above N (its apply takes minutes at 10,000)",
    )
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {sys.platform}, load {load}")
    terraform = terraform_binary()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="pipeform-bench-plan-") as tmp:
        work = Path(tmp)
        PYCACHE["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        if terraform is not None:
            rc = work / "terraformrc"
            rc.write_text("", encoding="utf-8")
            os.environ["TF_CLI_CONFIG_FILE"] = str(rc)
            version = subprocess.run(
                [terraform, "version"], capture_output=True, text=True, env=_env()
            )
            print(version.stdout.splitlines()[0])
        print()
        start = time.perf_counter()
        print("== fixed cost (best of 3 applies, 5 plans) ==")
        fixed_costs(work, results)
        timed("fixed cost", start)
        for shape in args.shapes:
            print(f"== {shape}: {SHAPES[shape]} ==")
            for size in sizes:
                start = time.perf_counter()
                for step, run in pipeform_steps(work, shape, size).items():
                    results.runs["pipeform", shape, size, step] = run
                line = f"  {size:>6,}: pipeform {time.perf_counter() - start:6.1f} s"
                start = time.perf_counter()
                if terraform is None:
                    line += "; terraform skipped: not installed"
                elif size > args.max_terraform:
                    line += f"; terraform skipped: N > --max-terraform {args.max_terraform:,}"
                else:
                    done = terraform_steps(work, terraform, shape, size)
                    if isinstance(done, str):
                        line += f"; terraform skipped: {done}"
                    else:
                        for step, run in done.items():
                            results.runs["terraform", shape, size, step] = run
                        line += f", terraform {time.perf_counter() - start:6.1f} s"
                print(line + " (all steps)", flush=True)
            print()
    print_table(results, args.shapes, sizes)
    print_targets(results, args.shapes, sizes)
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
