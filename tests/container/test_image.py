"""The trainer image itself: who it runs as, what it records, what it must never hold, and
the trainer's bad-input exit code when a mounted table is not the one the config names."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from providers.local import container
from tests.conftest import ROOT
from tests.container.conftest import PLANTED, podman
from tests.container.quickstart import apply, copy, only_run
from trainer.config import EXIT_BAD_INPUT
from trainer.version import TRAINER_VERSION

pytestmark = pytest.mark.slow


def test_the_image_runs_as_non_root_with_labels_and_a_package_list(trainer_image: str) -> None:
    ran = podman(
        "run", "--rm", *container.ULIMITS, "--network=none", "--entrypoint=sh", trainer_image,
        "-c", "id -u; cat /opt/pipeform/packages.txt; ls /opt/pipeform",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == str(container.IMAGE_UID)
    assert "torch==2.13.0+cpu" in lines and any(line.startswith("python3=") for line in lines)
    assert lines[-1] == "trainer"  # the trainer alone: no reconciler, no providers
    labels = json.loads(
        podman("image", "inspect", "--format", "{{json .Labels}}", trainer_image).stdout
    )
    assert labels["org.opencontainers.image.version"] == TRAINER_VERSION
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert labels["org.opencontainers.image.source"].startswith("https://")


def test_no_layer_holds_a_secret(tmp_path: Path, trainer_image: str) -> None:
    """The planted value was in the build's environment and is the quickstart Secret's."""
    root = copy(tmp_path, "container", trainer_image)
    apply(root, 0, "Secret/metrics-token")  # the value reaches the local secret store
    archive = tmp_path / "image.tar"
    saved = podman(
        "save", "--format=docker-archive", "-o", str(archive), trainer_image, timeout=300
    )
    assert saved.returncode == 0, saved.stderr
    needle = PLANTED.encode()
    with tarfile.open(archive) as outer:
        layers = [m for m in outer.getmembers() if m.isfile()]
        assert len(layers) > 2
        for member in layers:
            handle = outer.extractfile(member)
            assert handle is not None
            tail = b""
            while chunk := handle.read(1 << 20):
                assert needle not in tail + chunk, f"{PLANTED} found in {member.name}"
                tail = chunk[-len(needle) :]


def test_a_mounted_table_that_does_not_match_its_checksum_is_bad_input(
    tmp_path: Path, trainer_image: str, process_run: Path
) -> None:
    # a finished run's config names the feature tables and their sha256
    config = json.loads((only_run(process_run) / "config.json").read_text())
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    table = Path(config["inputs"]["train"]["path"])
    tampered = tmp_path / "tampered.parquet"
    tampered.write_bytes(table.read_bytes() + b"\0")
    config["inputs"]["train"]["path"] = str(tampered)
    config["registry"] = None
    config["output_dir"] = str(run_dir)
    config["checkpoint"]["dir"] = str(run_dir / "checkpoints")
    transform = config["inputs"].get("transform_path")
    config_path = run_dir / "tampered.json"
    config_path.write_text(json.dumps(config))
    boxed = container.ContainerRun(
        image=trainer_image,
        name="pipeform-test-bad-input",
        config=config_path,
        run_dir=run_dir,
        read_only=tuple(
            Path(p) for p in (tampered, config["inputs"]["validation"]["path"], transform) if p
        ),
        read_write=(),
        variables=(),
        network=False,
        cpu=1,
        memory_gib=2,
        gpus=0,
        workers=1,
    )
    with container.handed_over((run_dir,)):
        ran = subprocess.run(container.command(boxed), capture_output=True, text=True, timeout=300)
    assert ran.returncode == EXIT_BAD_INPUT, ran.stdout + ran.stderr
    assert "sha256" in (ran.stdout + ran.stderr).lower()


def test_a_base_that_cannot_be_built_is_one_clear_error(trainer_image: str) -> None:
    built = subprocess.run(
        ["bash", "trainer/image/build-base.sh", "pipeform-base:unbuildable"],
        cwd=ROOT,
        env={**os.environ, "DEBIAN_MIRROR": "http://127.0.0.1:9/debian", "FORCE": "1",
             "PIPEFORM_BUILD_DIR": str(ROOT / ".pipeform-build" / "unbuildable")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert built.returncode == 1, built.stdout + built.stderr
    errors = [line for line in built.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, built.stderr
    assert "debootstrap could not build the base" in errors[0]
    assert "DEBIAN_MIRROR=" in errors[0] and "BASE_IMAGE=" in errors[0]
    assert podman("image", "exists", "pipeform-base:unbuildable").returncode != 0
