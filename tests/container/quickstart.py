"""The quickstart tree with the real trainer, applied by the process or the container executor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import PIPEFORM, SPECS, run_cli
from tests.container.conftest import PLANTED

#: the real trainer (no stand-in), and a Secret value to look for where it must not be
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PIPEFORM_TRAINER_COMMAND"},
    "QUICKSTART_METRICS_TOKEN": PLANTED,
    "NO_COLOR": "1",
}
JOB = "TrainingJob/expense-model"


def copy(tmp: Path, executor: str | None, image: str = "", name: str = "tree") -> Path:
    """The quickstart under tmp; executor sets providers.local.executor (None: the default)."""
    root = tmp / name
    shutil.copytree(
        SPECS / "examples" / "quickstart", root, ignore=shutil.ignore_patterns(".pipeform")
    )
    if executor is not None:
        workspace = root / "pipeform.yaml"
        setting = f"      executor: {{type: {executor}, image: {json.dumps(image)}}}\n"
        text = workspace.read_text().replace(
            "      maxConcurrentJobs: 1\n", "      maxConcurrentJobs: 1\n" + setting
        )
        workspace.write_text(text)
    return root


def apply(root: Path, expect: int = 0, *targets: str) -> subprocess.CompletedProcess[str]:
    args = [arg for target in targets for arg in ("--target", target)]
    result = run_cli("apply", "--auto-approve", *args, cwd=root, env=ENV, timeout=600)
    assert result.returncode == expect, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result


def start_apply(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PIPEFORM), "apply", "--auto-approve"],
        cwd=root,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def job_dir(root: Path) -> Path:
    return root / ".pipeform" / "data" / "runs" / "expense-model"


def only_run(root: Path) -> Path:
    found = [p for p in job_dir(root).iterdir() if (p / "run.json").exists()]
    assert len(found) == 1, found
    return found[0]


def result(run_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
    return loaded


def record(run_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return loaded
