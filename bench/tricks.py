"""What each speed trick buys: the same workload with the trick and with it taken out.

docs/architecture.md lists the tricks pipeform keeps, each with the gain this script
measured ("Speed tricks and what each buys"); a trick that buys under 2% on a workload a
user runs is retired. For each trick it copies this checkout's packages twice into a
temporary directory, takes the trick out of one copy (an edit named below, applied to
whichever module holds the text; the script stops if the text is gone, so the edits
cannot silently go stale), sets up a tree per copy and times both:

  instructions  `valgrind --tool=cachegrind` instruction count of one run (when valgrind
                is installed): unaffected by other load on the machine, so it shows a
                gain of a few percent that wall time cannot
  wall time     the median of --runs runs, the two copies alternating

Workloads: `quotas` (no-op plan of 1,000 local Quotas), `quickstart` (no-op plan of
specs/examples/quickstart; set up with tests/training/fake_trainer.py, as a no-op plan
runs no trainer), `change` (a plan of the 1,000 Quotas after one changed), `apply`
(apply creating the 1,000 Quotas: its wall time waits on the disk, which instructions do
not count).

    .venv/bin/python bench/tricks.py                          # every trick: about 15 minutes
    .venv/bin/python bench/tricks.py --tricks gc-threshold --runs 11
    .venv/bin/python bench/tricks.py --list

A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import local  # bench/local.py: spec trees
from plan import PYCACHE, measure, pipeform_command  # bench/plan.py

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reconciler", "providers", "trainer")


@dataclass(frozen=True)
class Trick:
    name: str
    what: str
    workloads: tuple[str, ...]
    edits: tuple[tuple[str, str], ...] = ()  # (text with the trick, text without it)
    pattern: str | None = None  # a regular expression whose matches are removed instead
    files: tuple[str, ...] = ()  # the modules the pattern applies to (default: every one)
    env: dict[str, str] = field(default_factory=dict)  # or an environment that turns it off
    #: False where a count means nothing: valgrind runs one thread at a time, so workers
    #: waiting for a group commit count instructions while they wait
    count: bool = True


NOOP = ("quotas", "quickstart")
TRICKS = (
    Trick(
        "lazy-handlers",
        "the local provider imports a kind's handler on its first call, not all at start",
        NOOP,
        edits=(
            (
                '__all__ = ["HANDLERS", "LocalProvider", "handler_class"]',
                '__all__ = ["HANDLERS", "LocalProvider", "handler_class"]\n'
                "for _kind in HANDLERS:\n    handler_class(_kind)",
            ),
        ),
    ),
    Trick(
        "state-records",
        "state rows made without ResourceState.__init__ (object.__new__, state/model.py)",
        NOOP,
        edits=(("if values.keys() == _RESOURCE_FIELDS:", "if False:"),),
    ),
    Trick(
        "group-commit",
        "the applier's group commit (state writes that finish together share a commit)",
        ("apply",),
        count=False,
        edits=(
            (
                "batch, self._queued = self._queued, []",
                "batch = [write]\n                self._queued.remove(write)",
            ),
        ),
    ),
    Trick(
        "deepdiff-extras",
        "pandas, polars and numpy hidden in sys.modules while deepdiff loads",
        ("change",),
        edits=(
            (
                "hidden = [name for name in _DEEPDIFF_EXTRAS if name not in sys.modules]",
                "hidden: list[str] = []",
            ),
        ),
    ),
    Trick(
        "os-exit",
        "read-only commands leave with os._exit after flushing their output",
        NOOP,
        edits=(("        os._exit(exc.code or 0)", "        raise"),),
    ),
    Trick(
        "gc-threshold",
        "the cyclic garbage collector runs 100x less often (gc.set_threshold)",
        (*NOOP, "apply"),
        edits=(("gc.set_threshold(100_000, 50, 100)", "pass"),),
    ),
    Trick(
        "plugin-stand-in",
        "a stand-in for pydantic's plugin loader (reconciler/cli/startup.py)",
        NOOP,
        edits=(("sys.modules[LOADER] = _stand_in()", "pass"),),
    ),
    Trick(
        "entry-point-cache",
        "providers' entry points cached by installed packages (providers/discovery.py)",
        NOOP,
        env={"PIPEFORM_ENTRY_POINT_CACHE": "0"},
    ),
)


def copy_packages(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return destination


def take_out(trick: Trick, source: Path) -> None:
    """Edit the copy at source so that the trick is gone (stops when an edit finds nothing)."""
    files = sorted(source.rglob("*.py"))
    if trick.files:
        files = [p for p in files if p.relative_to(source).as_posix() in trick.files]
    if trick.pattern is not None:
        changed = 0
        for path in files:
            text = path.read_text(encoding="utf-8")
            new, count = re.subn(trick.pattern, "", text)
            if count:
                path.write_text(new, encoding="utf-8")
                changed += count
        if not changed:
            sys.exit(f"{trick.name}: nothing matches {trick.pattern!r}; update bench/tricks.py")
    for old, new in trick.edits:
        holders = [p for p in files if old in p.read_text(encoding="utf-8")]
        if len(holders) != 1:
            sys.exit(f"{trick.name}: {old!r} is in {len(holders)} modules; update bench/tricks.py")
        path = holders[0]
        path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


def _env(source: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYCACHE, CHECKPOINT_DISABLE="1", NO_COLOR="1", PYTHONPATH=str(source))
    env.update(BENCH_TOKEN="bench-value", QUICKSTART_METRICS_TOKEN="bench-value")
    return {**env, **extra}


def _tree(work: Path, label: str, workload: str, source: Path, extra: dict[str, str]) -> Path:
    """An applied tree for the workload (planned once, to fill the spec cache)."""
    tree = work / f"{label}-{workload}"
    if workload == "quickstart":
        local.write_quickstart(tree, terraform=False)
    else:
        local.write_quotas(tree, 1_000, terraform=False)
    if workload == "apply":
        return tree
    trainer = {"PIPEFORM_TRAINER_COMMAND": f"{sys.executable} {local.FAKE_TRAINER}"}
    measure(
        [*pipeform_command(), "apply", "--auto-approve", "."],
        tree,
        env=_env(source, {**extra, **trainer}),
    )
    measure([*pipeform_command(), "plan", "."], tree, env=_env(source, extra))
    if workload == "change":
        edited = tree / "quotas-0005.yaml"
        text = edited.read_text(encoding="utf-8")
        edited.write_text(text.replace("gpus: 1", "gpus: 2", 1), encoding="utf-8")
        measure([*pipeform_command(), "plan", "."], tree, (0, 2), env=_env(source, extra))
    return tree


def _command(workload: str) -> tuple[list[str], tuple[int, ...]]:
    if workload == "apply":
        return [*pipeform_command(), "apply", "--auto-approve", "."], (0,)
    return [*pipeform_command(), "plan", "--detailed-exitcode", "."], (
        2,
    ) if workload == "change" else (0,)


def instructions(tree: Path, workload: str, env: dict[str, str]) -> int | None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    if workload == "apply":  # from empty state
        shutil.rmtree(tree / ".pipeform", ignore_errors=True)
    command, expect = _command(workload)
    if command[0] != sys.executable:  # the console script: valgrind runs its interpreter
        command = [sys.executable, *command]
    env = {**env, "PYTHONHASHSEED": "0"}  # the same dict and set layouts in both runs
    done = subprocess.run(
        [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         *command],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode not in expect or found is None:
        sys.exit(f"cachegrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found[1].replace(",", ""))


def wall(work: Path, label: str, workload: str, source: Path, extra: dict[str, str]) -> float:
    command, expect = _command(workload)
    tree = work / f"{label}-{workload}"
    if workload == "apply":  # from empty state each time
        shutil.rmtree(tree / ".pipeform", ignore_errors=True)
    return measure(command, tree, expect, env=_env(source, extra)).seconds


def gain(with_trick: float, without: float) -> str:
    return f"{(without - with_trick) / without:+.1%}"


def measure_trick(trick: Trick, work: Path, runs: int) -> None:
    base = copy_packages(work / "with" / "src")
    plain = copy_packages(work / "without" / "src")
    take_out(trick, plain)
    sides = {"with": (base, {}), "without": (plain, trick.env)}
    print(f"== {trick.name}: {trick.what}")
    for workload in trick.workloads:
        counts: dict[str, int | None] = {}
        for label, (source, extra) in sides.items():
            tree = _tree(work, label, workload, source, extra)
            counts[label] = (
                instructions(tree, workload, _env(source, extra)) if trick.count else None
            )
        times: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(runs):
            for label, (source, extra) in sides.items():
                times[label].append(wall(work, label, workload, source, extra))
        a, b = statistics.median(times["with"]), statistics.median(times["without"])
        line = f"  {workload:<10} wall median {a:.3f} s with, {b:.3f} s without: {gain(a, b)}"
        if counts["with"] and counts["without"]:
            i, j = counts["with"], counts["without"]
            line += f"; instructions {i / 1e9:.3f} G with, {j / 1e9:.3f} G without: {gain(i, j)}"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [t.name for t in TRICKS]
    parser.add_argument("--tricks", nargs="+", choices=names, default=names)
    parser.add_argument("--runs", type=int, default=7, help="wall-time runs per side")
    parser.add_argument("--list", action="store_true", help="list the tricks and stop")
    args = parser.parse_args()
    if args.list:
        for trick in TRICKS:
            print(f"{trick.name:<21} {trick.what} ({', '.join(trick.workloads)})")
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load}")
    print("gain: how much longer the workload takes without the trick, as a share of that\n")
    for trick in TRICKS:
        if trick.name not in args.tricks:
            continue
        with tempfile.TemporaryDirectory(prefix="pipeform-bench-tricks-") as tmp:
            PYCACHE["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            measure_trick(trick, Path(tmp), args.runs)
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
