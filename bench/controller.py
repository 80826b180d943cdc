"""Benchmark one controller cycle on an unchanged repository (no new commit, no drift):
the quickstart (stand-in trainer for the first apply) and a 1,000-Quota tree.

Cycles run in-process through ``Controller.run_once``, the function the loop calls: git
fetch and checkout, lock, plan with refresh, snapshot for the status page. Prints the
time per cycle (median of the measured ones) and resident memory after 10 and after N
cycles, which should stay within 10%.

    .venv/bin/python bench/controller.py                 # 500 cycles each
    .venv/bin/python bench/controller.py --cycles 100    # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: bench}\nspec: {}\n"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def git(path: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


def make_repo(base: Path, shape: str) -> Path:
    repo = base / "repo"
    if shape == "quickstart":
        shutil.copytree(
            ROOT / "specs" / "examples" / "quickstart",
            repo,
            ignore=shutil.ignore_patterns(".pipeform"),
        )
    else:
        repo.mkdir()
        (repo / "pipeform.yaml").write_text(WORKSPACE)
        docs = [
            f"---\napiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: q{i}}}\n"
            f"spec: {{gpus: 1}}\n"
            for i in range(1000)
        ]
        (repo / "quotas.yaml").write_text("".join(docs))
    (repo / ".gitignore").write_text(".pipeform/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "bench")
    return repo


def bench(shape: str, cycles: int) -> None:
    from reconciler.controller import logs
    from reconciler.controller.loop import Controller, Settings

    logs.event = lambda *a, **k: None  # type: ignore[assignment]  # measure the cycle, not stderr
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), shape)
        loop = Controller(Settings(repo=str(repo), home=Path(tmp) / "ctl", auto_apply=True))
        loop.run_once()  # the first apply
        assert loop.status.sync.value == "Synced", loop.status.error
        times, at10 = [], 0.0
        for n in range(1, cycles + 1):
            started = time.perf_counter()
            loop.run_once()
            times.append(time.perf_counter() - started)
            assert loop.status.sync.value == "Synced" and not loop.status.snapshot.pending
            if n == 10:
                at10 = rss_mib()
        end = rss_mib()
        print(
            f"{shape:>11}: cycle {statistics.median(times[5:]) * 1000:7.1f} ms median "
            f"(p90 {sorted(times)[int(len(times) * 0.9)] * 1000:.1f} ms); RSS after 10 "
            f"{at10:.1f} MiB, after {cycles} {end:.1f} MiB ({(end / at10 - 1) * 100:+.1f}%, "
            "target within 10%)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--shapes", default="quickstart,quota1000")
    args = parser.parse_args()
    os.environ.setdefault("QUICKSTART_METRICS_TOKEN", "bench-token")
    os.environ.setdefault(
        "PIPEFORM_TRAINER_COMMAND",
        f"{sys.executable} {ROOT / 'tests' / 'training' / 'fake_trainer.py'}",
    )
    for shape in args.shapes.split(","):
        bench(shape, args.cycles)


if __name__ == "__main__":
    main()
