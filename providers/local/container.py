"""The container executor: each training attempt runs in the trainer image, with podman.

Chosen in the Workspace (``providers.local.executor: {type: container, image: ...}``; the
image reference is a trusted setting). The attempt is the same as the process executor's
(``executor.py``): the relay starts ``podman run`` in its own process group, redacts the
secret values in what it prints, and passes SIGTERM on; ``podman run`` proxies the signal
to the trainer (``--sig-proxy``, its default), which checkpoints and exits with the
trainer's own exit codes, so retries, preemption, resume and results work unchanged.

What the container gets:

- the run config and the input tables mounted read-only, the run directory (checkpoints,
  result, package) and the local registry read-write, each at its host path, so the run
  config needs no rewriting;
- the image's non-root user (uid 10001, no capabilities). Rootless, podman maps it to the
  user who runs pipeform (``--userns=keep-id:uid=10001,gid=10001``), so what it writes is
  that user's with nothing to hand over (tests/container/test_rootless.py; on cgroups v1
  podman ignores the cpu and memory limits rootless, and says so in the run's log). As
  root, the run directory and the local registry are handed to uid 10001 for the attempt
  and back to their owner after it (``handed_over``), so the trainer reads the 0600
  config and writes the 0700 run directory, and what it wrote belongs to root again. (A
  ``--uidmap`` of 10001 to root would need no chown, but podman's idmapped overlay mounts
  are refused on these machines.) A pipeform killed mid-run leaves the run directory with uid 10001 until
  the next apply resumes it and hands it back;
- secrets as environment variables only: ``--env NAME`` (the value comes from the
  environment of ``podman run``, never from its command line or a file);
- ``--network none``, unless the Workspace names an endpoint the run talks to (a
  Pushgateway or an MLflow registry): then the host's network, so 127.0.0.1 reaches it;
- a read-only root filesystem (a tmpfs on /tmp), no capabilities, no new privileges,
  ``--pull never``, no container log on disk (``--log-driver none``: the relay's redacted
  log is the only copy), and the job's cpu and memory as limits.

A container left behind by a pipeform killed with SIGKILL (its relay SIGTERMs ``podman
run``, which stops the trainer) is removed by name before the next attempt and after each.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from providers.base import PermanentError
from providers.local.relay import REDACT_ENV

#: the image's user (trainer/Dockerfile)
IMAGE_UID = 10001
#: podman on these machines: runc (hybrid cgroups make crun refuse), cgroupfs, and ulimits
#: below the hard limit
PODMAN_GLOBAL = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
#: variables of the run environment the container gets (besides the TrainingJob's env)
PASSED_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONUNBUFFERED",
    "CUDA_VISIBLE_DEVICES",
)
ENGINE_ENV = "PIPEFORM_CONTAINER_ENGINE"


@dataclass(frozen=True)
class ContainerRun:
    """What one attempt's container is given."""

    image: str  # the image id (see Image)
    name: str  # the container's name (one per run: a leftover is found by it)
    config: Path
    run_dir: Path
    read_only: tuple[Path, ...]  # input tables, fitted transform
    read_write: tuple[Path, ...]  # the local registry
    variables: tuple[str, ...]  # names passed with --env (values from the environment)
    network: bool  # the run talks to an endpoint the Workspace names
    cpu: float
    memory_gib: float
    gpus: int
    workers: int


def engine() -> str:
    """The podman binary; a clear error when it is missing."""
    found = shutil.which(os.environ.get(ENGINE_ENV) or "podman")
    if found is None:
        raise PermanentError(
            "the container executor needs podman, which is not installed; install it "
            "(Debian: apt-get install podman runc), or set providers.local.executor.type: "
            "process in the Workspace"
        )
    return found


def podman(*args: str) -> list[str]:
    return [engine(), *PODMAN_GLOBAL, *args]


@dataclass(frozen=True)
class Image:
    """The trainer image as found on this machine."""

    id: str  # what each attempt runs: the same image even if the tag moves meanwhile
    reference: str  # name@sha256:<manifest digest>, for the lineage


@functools.cache
def find_image(image: str) -> Image:
    """The image's id and reference by digest; a clear error when it is absent."""
    done = subprocess.run(
        podman("image", "inspect", "--format", "{{.Id}} {{.Digest}}", image),
        capture_output=True,
        text=True,
        check=False,
    )
    found = done.stdout.split()
    if done.returncode == 0 and len(found) == 2:
        name = image.split("@", 1)[0]
        return Image(found[0], f"{name}@{found[1]}")
    if "image not known" not in done.stderr:
        raise PermanentError(_podman_failed(done.stderr))
    rootless = (
        f" (rootless, podman keeps your own images, apart from root's: copy root's with "
        f"sudo podman save {image} | podman load)"
        if os.geteuid() != 0
        else ""
    )
    raise PermanentError(
        f"the trainer image {image!r} does not exist on this machine{rootless}; build it "
        f"(make image) or pull it (podman pull {image}), or set "
        "providers.local.executor.image in the Workspace"
    )


def _podman_failed(stderr: str) -> str:
    """podman could not run at all: its last error line, and for rootless podman what it
    needs (docs/reference/trainer.md, "Rootless")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = lines[-1] if lines else "no error message"
    logged = re.search(r'level=\w+ msg="(.*)"$', said)  # podman's log format
    if logged:
        said = logged.group(1).replace('\\"', '"')
    if os.geteuid() == 0:
        return f"podman failed: {said}"
    return (
        f"rootless podman failed: {said}; it needs subordinate ids for your user in "
        "/etc/subuid and /etc/subgid (usermod --add-subuids/--add-subgids, then podman "
        "system migrate), newuidmap (Debian package uidmap), and XDG_RUNTIME_DIR unset or "
        "a directory you own"
    )


def user_mapping() -> list[str]:
    """How the image's user meets the user who runs pipeform (see the module docstring)."""
    if os.geteuid() != 0:
        return [f"--userns=keep-id:uid={IMAGE_UID},gid={IMAGE_UID}"]
    return [f"--user={IMAGE_UID}:{IMAGE_UID}"]


@contextlib.contextmanager
def handed_over(paths: tuple[Path, ...]) -> Iterator[None]:
    """As root: paths (recursively) belong to the image's user while the container runs,
    and to their owner again after, so the trainer reads the 0600 config and writes the
    0700 run directory, and what it wrote is the owner's. Rootless: nothing to do."""
    if os.geteuid() != 0:
        yield
        return
    owners = {path: (path.stat().st_uid, path.stat().st_gid) for path in paths}
    for path in paths:
        _chown_tree(path, IMAGE_UID, IMAGE_UID)
    try:
        yield
    finally:
        for path, (uid, gid) in owners.items():
            _chown_tree(path, uid, gid)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for folder, dirs, names in os.walk(top):
        for name in (*dirs, *names):
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(folder, name), uid, gid)


def command(run: ContainerRun) -> list[str]:
    """``podman run`` for one attempt; the trainer's ``run --config FILE`` inside."""
    mounts = [f"--volume={run.run_dir}:{run.run_dir}:rw"]
    mounts += [f"--volume={p}:{p}:rw" for p in run.read_write]
    mounts += [f"--volume={p}:{p}:ro" for p in (run.config, *run.read_only)]
    limits = [f"--cpus={run.cpu:g}", f"--memory={max(run.memory_gib, 0.25):g}g"]
    gpus = ["--device=nvidia.com/gpu=all"] if run.gpus else []
    trainer = ["run", "--config", str(run.config)]
    if run.workers > 1:
        launcher = [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={run.workers}",
        ]
        entry, args = ["--entrypoint=python"], [*launcher, "-m", "trainer", *trainer]
    else:
        entry, args = [], trainer
    return podman(
        "run",
        "--rm",
        f"--name={run.name}",
        f"--label=pipeform.container={run.name}",
        "--pull=never",
        "--log-driver=none",
        "--read-only",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        f"--network={'host' if run.network else 'none'}",
        f"--workdir={run.run_dir}",
        *ULIMITS,
        *user_mapping(),
        *limits,
        *gpus,
        *mounts,
        *[f"--env={name}" for name in run.variables],
        *entry,
        run.image,
        *args,
    )


def variables(job_env: list[str]) -> tuple[str, ...]:
    """The names the container gets: the run's thread settings and the TrainingJob's env
    (``--env NAME`` passes a variable only where ``podman run``'s environment sets it)."""
    names = [*PASSED_ENV, *(n for n in job_env if n != REDACT_ENV)]
    return tuple(dict.fromkeys(names))


def remove(name: str) -> None:
    """Remove the container by name, if it is there (a leftover of a killed pipeform)."""
    subprocess.run(
        podman("rm", "--force", "--ignore", "--time=5", name),
        capture_output=True,
        check=False,
    )
