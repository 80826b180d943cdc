"""``python -m trainer``: help, exit codes, one-line errors, and a whole run in a child."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import ROOT, events, run_trainer, trainer_env, write_config
from trainer.config import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from trainer.version import trainer_code_digest

Factory = Callable[..., dict[str, Any]]


def _python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=trainer_env(**env),
        timeout=120,
        check=False,
    )


def test_help_names_the_run_command_without_loading_torch() -> None:
    done = _python("-m", "trainer", "--help")
    assert done.returncode == 0
    assert "run" in done.stdout and "Exit codes" in done.stdout
    probe = (
        "import sys\nfrom trainer.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'pyarrow' in sys.modules)"
    )
    done = _python("-c", probe)
    assert "--config FILE" in done.stdout
    assert done.stdout.strip().endswith("False False")


def test_digest_prints_the_code_digest() -> None:
    done = _python("-m", "trainer", "digest")
    assert json.loads(done.stdout)["code_digest"] == trainer_code_digest()


def test_a_bad_config_is_one_line_and_still_writes_result_json(tmp_path: Path) -> None:
    config = {"run_id": "r1", "output_dir": str(tmp_path / "out"), "model": {"type": "tree"}}
    path = write_config(tmp_path / "config.json", config)
    done = run_trainer(path)
    assert done.returncode == EXIT_FAILED
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainer: error: config file")
    assert "more problem" in lines[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["status"] == "failed" and "config file" in result["error"]
    missing = run_trainer(tmp_path / "nope.json")
    assert missing.returncode == EXIT_FAILED and "does not exist" in missing.stderr


def test_tracebacks_only_with_pipeform_debug(config_factory: Factory, tmp_path: Path) -> None:
    (tmp_path / "broken_model.py").write_text(
        "def build(n_inputs, n_outputs, config):\n    return 1 / 0\n"
    )
    config = config_factory(model={"type": "custom", "entrypoint": "broken_model:build"})
    path = write_config(tmp_path / "config.json", config)
    pythonpath = f"{ROOT}:{tmp_path}"
    quiet = run_trainer(path, env=trainer_env(PYTHONPATH=pythonpath))
    assert quiet.returncode == EXIT_FAILED
    assert "trainer: error: ZeroDivisionError: division by zero" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = run_trainer(path, env=trainer_env(PYTHONPATH=pythonpath, PIPEFORM_DEBUG="1"))
    assert loud.returncode == EXIT_FAILED and "Traceback" in loud.stderr


@pytest.mark.slow
def test_a_run_in_a_child_process_logs_json_and_succeeds(
    config_factory: Factory, tmp_path: Path
) -> None:
    config = config_factory(hyperparameters={"epochs": 2})
    done = run_trainer(write_config(tmp_path / "config.json", config))
    assert done.returncode == EXIT_OK, done.stderr
    lines = events(done.stderr)
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("epoch") == 2 and "packaged" in kinds
    assert all(line.startswith("{") for line in done.stderr.strip().splitlines())
    result = json.loads((Path(config["output_dir"]) / "result.json").read_text())
    assert 0 < result["first_step_seconds"] < result["duration_seconds"]


def test_bad_input_exit_code_from_the_command_line(config_factory: Factory, tmp_path: Path) -> None:
    config = config_factory()
    config["inputs"]["train"]["sha256"] = "0" * 64
    done = run_trainer(write_config(tmp_path / "config.json", config))
    assert done.returncode == EXIT_BAD_INPUT
    assert "the train table" in done.stderr and "Traceback" not in done.stderr


def test_progress_bar_on_a_terminal() -> None:
    import io

    from trainer.progress import Reporter

    screen = io.StringIO()
    reporter = Reporter(stream=screen, interactive=True)
    reporter.start_epoch(0, 3, steps=10, done=0)
    reporter.step(4, lambda: 0.6931, 12345.0)
    reporter.event("checkpoint", path="/tmp/x.pt", step=4)
    reporter.close()
    shown = screen.getvalue()
    assert "epoch 1/3" in shown and "checkpoint" in shown and "0.6931" in shown
    assert "12,345 samples/s" in shown
    quiet = io.StringIO()
    Reporter(enabled=False, stream=quiet).event("epoch", epoch=1)
    assert quiet.getvalue() == ""


def test_gpu_check_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")], check=False)
    assert done.returncode == 0


@pytest.mark.slow
def test_gpu_check_cpu_fallback_runs(tmp_path: Path) -> None:
    """The GPU check's CPU path: float32 training, a 1-process gloo torchrun, throughput."""
    env = trainer_env(
        GPU_CHECK_DEVICE="cpu", GPU_CHECK_QUICK="1", OUT=str(tmp_path), PYTHON=sys.executable
    )
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=400,
        check=False,
    )
    summary = (tmp_path / "gpu_check.txt").read_text()
    assert done.returncode == 0, summary
    assert "ok      bf16-training" in summary and "ok      ddp-single-process" in summary
    assert "ok      throughput" in summary and "0 check(s) failed" in summary
    assert json.loads((tmp_path / "trainer-bench.json").read_text())["device"] == "cpu"
