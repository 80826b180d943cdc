"""A full disk: apply on a tree whose .pipeform lives on a small tmpfs (room for the
state, not for the data) fails with one clear error, leaves a readable state, and once
the filesystem has room the next apply converges."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import unavailable
from tests.training.quickstart import apply, copy, pipeform

SMALL, ROOMY = "1m", "32m"  # the state fits in 1 MiB; the snapshot of the data does not


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The quickstart, its .pipeform on a 1 MiB tmpfs (unmounted afterwards)."""
    root = copy(tmp_path)
    (root / ".pipeform").mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(root / ".pipeform")],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / ".pipeform")], check=False)


def test_a_full_disk_fails_cleanly_and_the_next_apply_converges(small_disk: Path) -> None:
    root = small_disk
    failed = apply(root, expect=1)
    output = failed.stdout + failed.stderr
    (line,) = [line for line in output.splitlines() if ": failed:" in line]
    assert line.startswith("Dataset/rand-hie: failed: the disk is full (no space left on device)")
    assert "crashed" not in output and "Traceback" not in output
    assert "1 failed" in output

    listed = pipeform(root, "state", "list")  # the state is readable, what was made is in it
    assert listed.returncode == 0, listed.stderr
    assert "Quota/growth-cpu" in listed.stdout and "Secret/metrics-token" in listed.stdout

    remount = ["mount", "-o", f"remount,size={ROOMY}", str(root / ".pipeform")]
    subprocess.run(remount, check=True)
    applied = apply(root)
    assert "deleted outside pipeform" not in applied.stdout
    planned = pipeform(root, "plan", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    snapshots = root / ".pipeform" / "data" / "datasets" / "rand-hie" / "snapshots"
    assert [p.name[:3] for p in snapshots.iterdir()] == ["ds-"]  # no half-written one
