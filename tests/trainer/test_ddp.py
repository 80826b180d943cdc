"""Data-parallel training: two CPU processes under torchrun (gloo), in a private network.

Each torchrun runs inside its own network namespace (``unshare -rn``, loopback only), so
its rendezvous port can clash with nothing else on the machine. Where namespaces are not
permitted the tests skip with the reason, except in CI (CI=true), where they fail.

A failed torchrun explains itself: the assertion carries torchrun's own output without the
trainer's JSON events (the workers' errors, a C++ ``terminate called ...`` line, the
Python stacks that faulthandler prints when a worker dies of a signal, and torchrun's
failure summary), then the last events, so a one-off failure in CI can be read from the
log alone.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.servers import in_ci
from tests.trainer.conftest import ROOT, events, make_config, trainer_env, write_config
from trainer.config import EXIT_OK
from trainer.loop import FAULT_ENV

pytestmark = pytest.mark.slow
TORCHRUN = Path(sys.executable).with_name("torchrun")
SETTINGS: dict[str, Any] = {"rows": 4000, "hyperparameters": {"epochs": 4}}


def _namespace_prefix() -> list[str]:
    """unshare -rn (or -n as root); skip (or fail in CI) when neither is permitted."""
    problems = []
    for flags in (["-rn"], ["-n"]):
        probe = ["unshare", *flags, "sh", "-c", "ip link set lo up"]
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            problems.append(f"unshare {flags[0]}: {error}")
            continue
        if done.returncode == 0:
            return ["unshare", *flags]
        problems.append(f"unshare {flags[0]}: {done.stderr.strip() or done.returncode}")
    reason = "network namespaces are not permitted here (" + "; ".join(problems) + ")"
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def torchrun(config_path: Path, nproc: int = 2, **env: str) -> subprocess.CompletedProcess[str]:
    command = shlex.join(
        [
            str(TORCHRUN),
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "trainer",
            "run",
            "--config",
            str(config_path),
        ]
    )
    return subprocess.run(
        [*_namespace_prefix(), "sh", "-c", f"ip link set lo up && exec {command}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=trainer_env(PYTHONFAULTHANDLER="1", **env),
        timeout=300,
        check=False,
    )


_NOISE = ("The hostname of the client socket cannot be retrieved",)


def explain(done: subprocess.CompletedProcess[str], limit: int = 12_000) -> str:
    """torchrun's exit code and output for an assertion message: every line that is not a
    trainer event (repeated harmless warnings left out), then the last three events."""
    lines = done.stderr.splitlines()
    other = [
        line
        for line in lines
        if line.strip() and not line.startswith("{") and not any(n in line for n in _NOISE)
    ]
    text = "\n".join(other)
    if len(text) > limit:  # keep the start (the first failure) and the end (the summary)
        text = text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]
    last = [line for line in lines if line.startswith("{")][-3:]
    return (
        f"torchrun exited {done.returncode}; its output without the trainer's events:\n"
        f"{text}\n--- last events ---\n"
        + "\n".join(last)
        + f"\n--- stdout ---\n{done.stdout[-2000:]}"
    )


def _result(config: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(config["output_dir"]) / "result.json").read_text())


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    if shutil.which("unshare") is None and not in_ci():
        pytest.skip("unshare is not installed")
    config = make_config(tmp_path_factory.mktemp("ddp"), **SETTINGS)
    done = torchrun(write_config(Path(config["output_dir"]).parent / "config.json", config))
    assert done.returncode == EXIT_OK, explain(done)
    return config, done.stderr


def test_two_processes_train_as_well_as_one(
    ddp_run: tuple[dict[str, Any], str],
    config_factory: Callable[..., dict[str, Any]],
    run_inprocess: Callable[[dict[str, Any]], int],
) -> None:
    config, stderr = ddp_run
    # the same global batch: 2 ranks x 128 rows per step against 1 x 256
    batch = SETTINGS["hyperparameters"] | {
        "batch_size": 2 * config["hyperparameters"]["batch_size"]
    }
    single = config_factory("single", rows=SETTINGS["rows"], hyperparameters=batch)
    assert run_inprocess(single) == EXIT_OK
    ddp, one = _result(config), _result(single)
    assert ddp["status"] == "succeeded"
    assert abs(ddp["metrics"]["auc"] - one["metrics"]["auc"]) < 0.02
    assert abs(ddp["metrics"]["loss"] - one["metrics"]["loss"]) < 0.05 * one["metrics"]["loss"]
    assert ddp["steps"] == one["steps"]  # each rank sees half of every epoch
    lines = events(stderr)
    started = [e for e in lines if e["event"] == "started"]
    assert len(started) == 1 and started[0]["world_size"] == 2  # only rank 0 reports
    assert sum(e["event"] == "finished" for e in lines) == 1
    assert (Path(config["output_dir"]) / "package" / "model.safetensors").exists()


def test_preempted_ddp_run_resumes_to_identical_weights(
    ddp_run: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    reference, _ = ddp_run
    config = make_config(tmp_path, **SETTINGS)
    path = write_config(tmp_path / "config.json", config)
    stopped = torchrun(path, **{FAULT_ENV: "sigterm@21:rank1"})  # only rank 1 is signalled
    assert stopped.returncode != EXIT_OK, explain(stopped)  # torchrun turns exit 5 into 1
    result = _result(config)
    assert result["status"] == "preempted" and result["steps"] == 21, explain(stopped)
    resumed = torchrun(path)
    assert resumed.returncode == EXIT_OK, explain(resumed)
    assert _result(config)["resumed_from"].endswith("ckpt-000000021.pt")
    first = load_file(str(Path(reference["output_dir"]) / "package" / "model.safetensors"))
    second = load_file(str(Path(config["output_dir"]) / "package" / "model.safetensors"))
    assert all(torch.equal(first[name], second[name]) for name in first)
