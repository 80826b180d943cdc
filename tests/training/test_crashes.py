"""kill -9 of apply and destroy on the quickstart (local provider, stand-in trainer).

What a user relies on after a crash: the next apply (or destroy) converges, the state
stays readable (`state list`), each training registered one model version (a crash never
trains twice), and nothing the dead run was writing is left behind (half-written feature
tables, run directories without a record, temporary files).
"""

from __future__ import annotations

import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.training.quickstart import ENV, JOB, apply, copy, pipeform, runs

FEATURES = "FeatureSet/hie-features"
#: a temporary name made by providers.leftovers: <stem>.<pid>-<start>.<random>[.tmp]
TEMPORARY = re.compile(r"\.\d+-\d+\.[0-9a-z_]+(\.tmp)?$")


def left_behind(root: Path) -> list[str]:
    """Temporary files and directories under the local provider's data."""
    data = root / ".pipeform" / "data"
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if TEMPORARY.search(p.name))


def model_versions(root: Path) -> int:
    from trainer.config import RegistryTarget
    from trainer.registry import open_registry

    uri = str(root / ".pipeform" / "data" / "registry")
    registry = open_registry(RegistryTarget(uri=uri, model="expense-model"))
    try:
        return len(registry.versions("expense-model"))
    except Exception:  # no such model yet
        return 0


def crash(root: Path, fault: str, *args: str, env: dict[str, str] = ENV) -> None:
    command = args or ("apply", "--auto-approve")
    killed = run_cli(*command, cwd=root, env={**env, "PIPEFORM_FAULT": fault}, timeout=120)
    assert killed.returncode == -signal.SIGKILL, (
        f"{fault} not reached:\n{killed.stdout}{killed.stderr}"
    )


def converged(root: Path, env: dict[str, str] = ENV, destroyed: bool = False) -> None:
    extra = ("--destroy",) if destroyed else ()
    check = run_cli("plan", "--detailed-exitcode", *extra, cwd=root, env=env, timeout=120)
    assert check.returncode == 0, f"not converged:\n{check.stdout}{check.stderr}"
    listed = run_cli("state", "list", cwd=root, env=env)
    assert listed.returncode == 0, listed.stderr
    assert (listed.stdout.strip() == "") == destroyed or destroyed, listed.stdout
    assert left_behind(root) == []


# -- what a crash leaves behind is removed by the next apply --------------------------------


def test_a_kill_during_materialisation_leaves_no_half_written_tables(tmp_path: Path) -> None:
    root = copy(tmp_path)
    crash(root, f"mid-materialise:{FEATURES}")
    assert any(p.startswith("features/hie-features/.fs-") for p in left_behind(root))
    apply(root)
    converged(root)
    assert model_versions(root) == 1


def test_a_kill_as_a_run_starts_leaves_no_run_without_a_record(tmp_path: Path) -> None:
    root = copy(tmp_path)
    crash(root, "mid-file-write:run.json")  # the first run.json: the run's directory is new
    assert any(p.startswith("runs/expense-model/.") for p in left_behind(root))
    apply(root)
    converged(root)
    job = root / ".pipeform" / "data" / "runs" / "expense-model"
    assert sorted(p.name for p in job.iterdir() if p.is_dir()) == sorted(runs(root))
    assert len(runs(root)) == 1 and model_versions(root) == 1


# -- kill -9 during update, replace and destroy ---------------------------------------------


@dataclass(frozen=True)
class Crash:
    run: str  # update (a Quota's spec and a Secret's value) | replace (the job) | destroy
    fault: str

    def __str__(self) -> str:
        return f"{self.run}-{self.fault}"

    @property
    def command(self) -> tuple[str, ...]:
        if self.run == "replace":
            return ("apply", "--auto-approve", "--replace", JOB)
        return ("destroy" if self.run == "destroy" else "apply", "--auto-approve")

    @property
    def versions(self) -> int:
        """Model versions once converged: a replacement trains once more, nothing else trains
        (a destroy keeps registered versions)."""
        return 2 if self.run == "replace" else 1


SCENARIOS = [
    Crash("update", "before-provider-call:Quota/growth-cpu"),
    Crash("update", "mid-file-write:growth-cpu.json"),
    Crash("update", "after-provider-call:Secret/metrics-token"),
    Crash("replace", f"mid-replace:{JOB}"),
    Crash("replace", "mid-file-write:run.json"),
    Crash("replace", f"after-provider-call:{JOB}"),  # the delete done, not yet recorded
    Crash("destroy", f"after-provider-call:{JOB}"),
    Crash("destroy", f"after-state-write:{FEATURES}"),
]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy(tmp_path_factory.mktemp("crashes"))
    apply(root)
    return root


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_the_next_run_converges_after_a_kill(
    scenario: Crash, applied: Path, tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(applied, root)
    env = ENV
    if scenario.run == "update":
        platform = root / "platform.yaml"
        platform.write_text(platform.read_text().replace("  cpu: 4", "  cpu: 6"))
        env = {**ENV, "QUICKSTART_METRICS_TOKEN": "qs-token-rotated"}
    crash(root, scenario.fault, *scenario.command, env=env)
    recovered = run_cli(*scenario.command[:2], cwd=root, env=env, timeout=120)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "Traceback" not in recovered.stdout + recovered.stderr
    converged(root, env, destroyed=scenario.run == "destroy")
    assert model_versions(root) == scenario.versions
    if scenario.run == "update":
        quota = pipeform(root, "state", "show", "Quota/growth-cpu").stdout
        assert '"cpu": 6' in quota or '"cpu": "6"' in quota, quota
    if scenario.run == "destroy":
        assert not (root / ".pipeform" / "data" / "runs" / "expense-model").exists()
