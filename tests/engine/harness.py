"""Helpers for the engine tests: a spec tree on the fake provider, and real processes.

Every command runs as the real ``pipeform`` console script in its own process, against
a real SQLite state file, so that crashes (SIGKILL), locks held by other processes and
stale locks behave as they do for users. Helpers here kill whatever they start when a
test fails, so no process outlives its test.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.state.model import LockInfo, State
from reconciler.state.sqlite import SqliteBackend

PIPEFORM = Path(sys.executable).with_name("pipeform")
TOKEN_ENV = "PIPEFORM_ENGINE_TEST_TOKEN"
PYCACHE = os.path.join(tempfile.gettempdir(), "pipeform-engine-tests-pycache")

WORKSPACE = """
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: engine-tests}
spec:
  defaults: {provider: fake, labels: {team: growth}}
"""

DATA = """
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: events}
spec:
  source: {uri: file://data/events.csv}
  schema:
    - {name: user, type: int, nullable: false}
    - {name: churned, type: int, allowed: [0, 1]}
    - {name: tenure, type: float, min: 0}
---
apiVersion: pipeform/v1
kind: Dataset
metadata: {name: clicks}
spec:
  source: {uri: file://data/clicks.jsonl}
  schema:
    - {name: impression, type: string, unique: true}
    - {name: clicked, type: int, allowed: [0, 1]}
    - {name: position, type: int, min: 1}
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {name: churn-features}
spec:
  dataset: events
  entity: [user]
  label: {column: churned}
  features: [{name: tenure, transforms: [standardize]}]
---
apiVersion: pipeform/v1
kind: FeatureSet
metadata: {name: ctr-features}
spec:
  dataset: clicks
  entity: [impression]
  label: {column: clicked}
  features: [{name: position}]
"""

PLATFORM = """
apiVersion: pipeform/v1
kind: Quota
metadata: {name: gpu-team}
spec: {gpus: 4, concurrentJobs: 2}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {name: api-token}
spec:
  from: {env: PIPEFORM_ENGINE_TEST_TOKEN}
  targets: [{provider: local}]
"""

TRAINING = """
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {name: churn-model}
spec:
  features: churn-features
  model: {type: mlp, task: binary-classification, hidden: [16]}
  hyperparameters: {epochs: 3, learningRate: 0.01, seed: 7}
  resources: {gpus: 1}
  quota: gpu-team
  env:
    API_TOKEN: {secret: api-token}
---
apiVersion: pipeform/v1
kind: TrainingJob
metadata: {name: ctr-model}
spec:
  features: ctr-features
  model: {type: linear, task: binary-classification}
  hyperparameters: {epochs: 2}
  quota: gpu-team
"""

ALERTS = """
apiVersion: pipeform/v1
kind: Alert
metadata: {name: churn-model-failed}
spec:
  template: {type: training-failed, job: churn-model}
  severity: critical
---
apiVersion: pipeform/v1
kind: Alert
metadata: {name: ctr-model-failed}
spec:
  template: {type: training-failed, job: ctr-model}
"""

FILES = {
    "pipeform.yaml": WORKSPACE,
    "data.yaml": DATA,
    "platform.yaml": PLATFORM,
    "training.yaml": TRAINING,
    "alerts.yaml": ALERTS,
}

#: every resource of the tree above (graph levels: Datasets, Quota and Secret; FeatureSets;
#: TrainingJobs; Alerts)
ADDRESSES = frozenset(
    {
        "Dataset/events",
        "Dataset/clicks",
        "FeatureSet/churn-features",
        "FeatureSet/ctr-features",
        "Quota/gpu-team",
        "Secret/api-token",
        "TrainingJob/churn-model",
        "TrainingJob/ctr-model",
        "Alert/churn-model-failed",
        "Alert/ctr-model-failed",
    }
)

NEW_ALERT = """
---
apiVersion: pipeform/v1
kind: Alert
metadata: {name: events-stale}
spec:
  template: {type: data-stale, dataset: events, maxAge: 24h}
"""

#: what `edit_tree` does: 5 updates (a Dataset change flows down its chain), 1 create, 1 delete
EDITED_ADDRESSES = (ADDRESSES - {"Alert/ctr-model-failed"}) | {"Alert/events-stale"}


def write_tree(root: Path) -> Path:
    """Write the ten-resource spec tree into root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def edit_tree(root: Path) -> None:
    """A typical pull request: a Dataset gains a column, a quota grows, an alert is
    swapped for another one."""
    data = (root / "data.yaml").read_text()
    data = data.replace(
        "    - {name: tenure, type: float, min: 0}\n",
        "    - {name: tenure, type: float, min: 0}\n    - {name: plan, type: string}\n",
    )
    (root / "data.yaml").write_text(data)
    platform = (root / "platform.yaml").read_text().replace("gpus: 4", "gpus: 8")
    (root / "platform.yaml").write_text(platform)
    alerts = (root / "alerts.yaml").read_text()
    alerts = alerts[: alerts.index("---")] + NEW_ALERT.lstrip("\n")
    (root / "alerts.yaml").write_text(alerts)


def env(**extra: str) -> dict[str, str]:
    """The environment of a pipeform process: no fault, no colour, wide lines."""
    out = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PIPEFORM_FAULT", "PIPEFORM_FAKE_STORE") and not k.startswith("PYTEST_")
    }
    out.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")
    # Start-up is most of each command's time: let the children share compiled modules
    # (outside the repository) even where the environment turns bytecode writing off.
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPYCACHEPREFIX"] = PYCACHE
    out.setdefault(TOKEN_ENV, "not-the-planted-secret")
    out.update(extra)
    return out


@dataclass(repr=False)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    pid: int
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:  # shown by failing asserts
        return (
            f"pipeform {' '.join(self.args)} -> exit {self.returncode} in {self.seconds:.2f}s\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


@contextmanager
def started(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None, stdin: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Start `pipeform ARGS`; the process is killed (and reaped) if still running on exit."""
    proc = subprocess.Popen(
        [str(PIPEFORM), *args],
        cwd=cwd,
        env=env(**(extra_env or {})),
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()


def finish(
    proc: subprocess.Popen[str], args: tuple[str, ...], t0: float, timeout: float = 60
) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(args, proc.returncode, out, err, proc.pid, time.monotonic() - t0)


def pipeform(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None, timeout: float = 60
) -> Result:
    """Run `pipeform ARGS` to completion (killed if it outlives timeout)."""
    t0 = time.monotonic()
    with started(*args, cwd=cwd, extra_env=extra_env) as proc:
        return finish(proc, args, t0, timeout)


# -- what a user can see after a command --------------------------------------------------


def store(root: Path) -> Path:
    return root / ".pipeform" / "fake"


def live_objects(root: Path) -> dict[str, dict[str, Any]]:
    """The fake provider's live objects by address (one JSON file each); two objects that
    claim one address (a duplicate made by a retried create) fail the test."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(store(root).glob("*.json")):
        body = json.loads(path.read_text())
        address = body["labels"]["pipeform.dev/address"]
        assert address not in out, f"two live objects claim {address}: a duplicate"
        out[address] = body
    return out


def calls(root: Path) -> list[dict[str, str]]:
    path = store(root) / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def state_list(root: Path) -> dict[str, Any]:
    """What `pipeform state list --json` prints for the tree at root."""
    result = pipeform("state", "list", "--json", "-C", str(root), cwd=root)
    assert result.returncode == 0, result
    listed: dict[str, Any] = json.loads(result.stdout)
    return listed


def state_db(root: Path) -> Path:
    return root / ".pipeform" / "state.db"


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of an applied tree: specs, state file and live objects (no process running)."""
    shutil.copytree(source, target)
    return target


def recorded(root: Path) -> State:
    """The state file's content now, as `state list` reads it (in this process: no start-up)."""
    backend = SqliteBackend(state_db(root))
    try:
        return backend.read()
    finally:
        backend.close()


def lock_holder(root: Path) -> LockInfo | None:
    """Who holds the state lock now, or None (also when no state file exists yet)."""
    if not state_db(root).exists():
        return None
    backend = SqliteBackend(state_db(root))
    try:
        return backend.lock_holder()
    finally:
        backend.close()


class Background:
    """Process-heavy scenarios, run on a small thread pool while other tests go on.

    A scenario is a function that raises (an AssertionError) when it fails; the test that
    owns it collects the outcome with ``result``. A scenario's processes are its own and
    are killed when it ends, so the pool never leaves one behind.
    """

    def __init__(self, base: Path, workers: int) -> None:
        self.base = base
        self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="engine-scenario")
        self._futures: dict[Hashable, cf.Future[None]] = {}
        self._applied: Path | None = None
        self._applied_lock = threading.Lock()

    def applied(self) -> Path:
        """The ten-resource tree, applied once (tests copy it rather than apply again)."""
        with self._applied_lock:
            if self._applied is None:
                root = write_tree(self.base / "applied")
                result = pipeform("apply", "--auto-approve", cwd=root)
                assert result.returncode == 0, result
                assert set(live_objects(root)) == ADDRESSES
                self._applied = root
            return self._applied

    def submit(self, key: Hashable, scenario: Callable[..., None], *args: object) -> None:
        self._futures[key] = self._pool.submit(scenario, *args)

    def result(self, key: Hashable, timeout: float = 300) -> None:
        self._futures[key].result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
