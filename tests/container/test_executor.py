"""The container executor on the quickstart: the same training as a local process, in the
trainer image, and what a user sees when it cannot run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.container.conftest import PLANTED, podman
from tests.container.quickstart import (
    apply,
    copy,
    job_dir,
    only_run,
    record,
    result,
    start_apply,
)

pytestmark = pytest.mark.slow


def test_the_container_trains_what_the_process_trains(
    tmp_path: Path, trainer_image: str, process_run: Path
) -> None:
    in_process = process_run
    in_container = copy(tmp_path, "container", trainer_image, name="container")
    applied = apply(in_container)
    assert PLANTED not in applied.stdout + applied.stderr
    local, boxed = only_run(in_process), only_run(in_container)
    assert result(boxed)["metrics"] == result(local)["metrics"]
    weights = "package/model.safetensors"
    assert (boxed / weights).read_bytes() == (local / weights).read_bytes()
    # the lineage names the image by digest; the process run names none
    image = record(boxed)["image"]
    assert image.startswith(f"{trainer_image.split(':')[0]}:") and "@sha256:" in image
    metadata = json.loads((boxed / "package" / "metadata.json").read_text())
    assert metadata["lineage"]["image"] == image
    assert json.loads((local / "package" / "metadata.json").read_text())["lineage"]["image"] is None
    # what the container wrote belongs to the user who runs pipeform, and no secret is on disk
    owners = {p.stat().st_uid for p in boxed.rglob("*")}
    assert owners == {os.geteuid()}
    assert (
        PLANTED not in (boxed.parent / f"{boxed.name}.log").read_text(errors="replace")
        if (boxed.parent / f"{boxed.name}.log").exists()
        else True
    )
    listed = podman("ps", "--all", "--filter", "label=pipeform.container", "--format", "{{.Names}}")
    assert listed.stdout.strip() == ""


def test_kill_9_of_pipeform_leaves_no_container_and_the_next_apply_resumes(
    tmp_path: Path, trainer_image: str
) -> None:
    root = copy(tmp_path, "container", trainer_image)
    training = root / "training.yaml"
    text = training.read_text()
    text = text.replace("epochs: 20", "epochs: 30").replace(
        "checkpoint: {every: 1m, keep: 3}", "checkpoint: {everySteps: 30, keep: 3}"
    )
    training.write_text(text.replace("    earlyStopping: {metric: auc, patience: 5}\n", ""))
    apply(root, 0, "FeatureSet/hie-features", "Secret/metrics-token", "Quota/growth-cpu")
    proc = start_apply(root)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = list(job_dir(root).glob("*/checkpoints/*")) if job_dir(root).exists() else []
        if runs:
            break
        assert proc.poll() is None, "apply ended before the first checkpoint"
        time.sleep(0.5)
    else:
        pytest.fail("no checkpoint within 300 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(60):  # the relay stops podman run, which stops the trainer
        listed = podman("ps", "--filter", "label=pipeform.container", "--format", "{{.Names}}")
        if listed.stdout.strip() == "":
            break
        time.sleep(0.5)
    assert listed.stdout.strip() == "", f"containers left running: {listed.stdout}"
    apply(root)
    run_dir = only_run(root)
    assert result(run_dir)["resumed_from"], "the next apply started over instead of resuming"
    assert record(run_dir)["status"] == "succeeded"


def test_podman_missing_is_one_clear_error(tmp_path: Path) -> None:
    root = copy(tmp_path, "container", "pipeform-trainer:0.1.0")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git",):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    from tests.container import quickstart

    env = {**quickstart.ENV, "PATH": str(bin_dir)}
    from tests.conftest import run_cli

    failed = run_cli("apply", "--auto-approve", cwd=root, env=env, timeout=600)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    out = failed.stdout + failed.stderr
    assert "the container executor needs podman, which is not installed" in out
    assert "apt-get install podman runc" in out
    assert "Traceback" not in out


def test_an_image_that_does_not_exist_is_one_clear_error(
    tmp_path: Path, trainer_image: str
) -> None:
    root = copy(tmp_path, "container", "pipeform-trainer:no-such-tag")
    failed = apply(root, 1)
    out = failed.stdout + failed.stderr
    assert "the trainer image 'pipeform-trainer:no-such-tag' does not exist" in out
    assert "make image" in out
    assert out.count("does not exist on this machine") == 1
