"""Container start to the first training step, against the process executor's; image size.

Applies the quickstart once (process executor) for its feature tables and run config, then
runs the same one-epoch training alternately as a local process (``python -m trainer``)
and in the trainer image (the container executor's ``podman run``, with its mounts, user,
limits and ``--network none``), and prints, side by side, the seconds from launching the
command to the trainer's ``first-step`` event (its wall-clock timestamp: the container
shares the host's clock), and the image's size. Needs podman and the image (``make image``).

    .venv/bin/python bench/container.py              # about 2 minutes on 2 CPUs
    .venv/bin/python bench/container.py --rounds 5

A benchmark, not a test: it exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from providers.local import container  # noqa: E402
from trainer.version import TRAINER_VERSION  # noqa: E402


def first_step(command: list[str], env: dict[str, str]) -> float:
    """Seconds from launching command to the trainer's first-step event."""
    launched = time.time()
    ran = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if ran.returncode != 0:
        sys.exit(f"a run failed ({ran.returncode}):\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}")
    for line in (ran.stdout + ran.stderr).splitlines():
        if line.startswith("{") and '"first-step"' in line:
            return float(json.loads(line)["ts"]) - launched
    sys.exit("the trainer printed no first-step event")


def prepared(work: Path) -> dict[str, Any]:
    tree = work / "tree"
    shutil.copytree(
        ROOT / "specs" / "examples" / "quickstart", tree, ignore=shutil.ignore_patterns(".pipeform")
    )
    env = {**os.environ, "QUICKSTART_METRICS_TOKEN": "bench", "NO_COLOR": "1"}
    pipeform = Path(sys.executable).with_name("pipeform")
    done = subprocess.run(
        [str(pipeform), "apply", "--auto-approve", "--target", "TrainingJob/expense-model"],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"applying the quickstart failed:\n{done.stdout}{done.stderr}")
    config_file = next((tree / ".pipeform" / "data" / "runs").glob("*/*/config.json"))
    config: dict[str, Any] = json.loads(config_file.read_text())
    config["hyperparameters"]["epochs"] = 1
    config["registry"] = None
    config["metrics"] = None
    config["gates"] = []  # one epoch: a gate would fail, and the timing is what counts
    return config


def run_dir(work: Path, config: dict[str, Any], name: str) -> tuple[Path, Path]:
    place = work / name
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir(mode=0o700)
    ours = {**config, "output_dir": str(place)}
    ours["checkpoint"] = {**config["checkpoint"], "dir": str(place / "checkpoints")}
    path = place / "config.json"
    path.write_text(json.dumps(ours))
    path.chmod(0o600)
    return place, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default=f"pipeform-trainer:{TRAINER_VERSION}")
    args = parser.parse_args()
    image = container.find_image(args.image)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "CUDA_VISIBLE_DEVICES": "", "NO_COLOR": "1"}
    env["PYTHONPATH"] = str(ROOT)
    process_s, container_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = prepared(work)
        inputs = config["inputs"]
        tables = tuple(
            Path(p)
            for p in (
                inputs["train"]["path"],
                inputs["validation"]["path"],
                inputs.get("transform_path"),
            )
            if p
        )
        for round_ in range(args.rounds):
            _, path = run_dir(work, config, f"process-{round_}")
            process_s.append(
                first_step([sys.executable, "-m", "trainer", "run", "--config", str(path)], env)
            )
            place, path = run_dir(work, config, f"container-{round_}")
            boxed = container.ContainerRun(
                image=image.id, name=f"pipeform-bench-{round_}", config=path, run_dir=place,
                read_only=tables, read_write=(), variables=container.PASSED_ENV, network=False,
                cpu=2, memory_gib=4, gpus=0, workers=1,
            )  # fmt: skip
            with container.handed_over((place,)):
                container_s.append(first_step(container.command(boxed), env))
    size = subprocess.run(
        container.podman("image", "inspect", "--format", "{{.Size}}", image.id),
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    best_p, best_c = min(process_s), min(container_s)
    print(f"start to first training step, best of {args.rounds} (median):")
    print(f"  process executor    {best_p:6.2f} s ({statistics.median(process_s):.2f} s)")
    print(f"  container executor  {best_c:6.2f} s ({statistics.median(container_s):.2f} s)")
    print(f"  container / process {best_c / best_p:6.2f}x  ({best_c - best_p:+.2f} s per attempt)")
    print(f"image {args.image} ({image.reference}): {int(size) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
