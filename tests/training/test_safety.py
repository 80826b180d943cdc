"""What guards a TrainingJob run: secrets stay out of files and errors, quotas and slots
hold, and an interrupted pipeform (Ctrl-C, or kill -9) leaves a run the next apply resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from providers.base import ApplyRequest, PermanentError, ResourceContext
from providers.local import executor
from providers.local.quota import QuotaHandler
from providers.local.secrets import SecretHandler
from tests.training.conftest import LINEAGE, Bench, document
from tests.training.test_runs import record, wait_for


def apply_secret(bench: Bench, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", value)
    ctx = ResourceContext.of("Secret/api-token", LINEAGE, bench.root)
    doc = document("Secret", "api-token", {"from": {"env": "TEST_API_TOKEN"}})
    made = SecretHandler(bench.settings).create(ApplyRequest(ctx, doc, None, {}, None, {}))
    monkeypatch.delenv("TEST_API_TOKEN")  # the run must take it from the store
    bench.upstream["Secret/api-token"] = made.outputs


def apply_quota(bench: Bench, **limits: Any) -> None:
    ctx = ResourceContext.of("Quota/team", LINEAGE, bench.root)
    made = QuotaHandler(bench.settings).create(
        ApplyRequest(ctx, document("Quota", "team", limits), None, {}, None, {})
    )
    bench.upstream["Quota/team"] = made.outputs


def files_holding(directory: Path, text: str, skip: Path) -> list[Path]:
    return [
        p
        for p in directory.rglob("*")
        if p.is_file() and not p.is_relative_to(skip) and text.encode() in p.read_bytes()
    ]


@pytest.mark.slow
def test_a_secret_reaches_the_run_but_no_file_it_writes(
    bench: Bench, trainer: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    value = os.urandom(12).hex()
    apply_secret(bench, monkeypatch, value)
    env = {**trainer["fast"].get("env", {}), "API_TOKEN": {"secret": "api-token"}}
    applied = bench.apply(bench.doc(**{**trainer["fast"], "env": env}))
    assert applied.outputs["status"] == "succeeded"
    assert files_holding(bench.data_dir, value, skip=bench.data_dir / "secrets") == []
    assert value not in json.dumps(applied.outputs)


def test_a_secret_the_trainer_prints_is_scrubbed_from_the_error(
    bench: Bench, fake_trainer: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = os.urandom(12).hex()
    apply_secret(bench, monkeypatch, value)
    env = {"API_TOKEN": {"secret": "api-token"}, "FAKE_CRASH_PRINTING": {"value": "API_TOKEN"}}
    with pytest.raises(PermanentError) as failed:
        bench.apply(bench.doc(env=env, retries=0))
    message = str(failed.value)
    assert "crashing with API_TOKEN=[redacted]" in message  # it did reach the trainer
    assert value not in message
    (run_dir,) = bench.run_dirs()
    assert value not in (run_dir / "config.json").read_text()
    assert record(bench, run_dir.name)["status"] == "failed"
    # the run's log holds what the trainer printed, redacted before it reached the disk,
    # and only its owner may read it
    log = run_dir / "logs" / "trainer.log"
    assert "crashing with API_TOKEN=[redacted]" in log.read_text()
    assert files_holding(bench.data_dir, value, skip=bench.data_dir / "secrets") == []
    assert log.stat().st_mode & 0o777 == 0o600
    for directory in (run_dir, run_dir / "logs", run_dir.parent):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


def test_a_secret_split_across_reads_is_still_redacted() -> None:
    from providers.local.relay import Redactor

    secret = b"s3cr3t-value-0123456789"
    stream = b"progress 1\nthe token is " + secret + b" and again " + secret + b"\n"
    stream += b"x" * 70000 + secret + b"y" * 10  # a long line without a newline
    for size in (1, 3, 7, 64, 4096):
        redactor = Redactor([secret])
        out = b"".join(redactor.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        out += redactor.close()
        assert secret not in out, size
        assert out.count(b"[redacted]") == 3, size
        assert out.startswith(b"progress 1\nthe token is [redacted] and again [redacted]\n")


def test_a_secret_that_was_never_applied_is_refused(bench: Bench, fake_trainer: object) -> None:
    with pytest.raises(PermanentError) as failed:
        bench.apply(bench.doc(env={"API_TOKEN": {"secret": "api-token"}}))
    assert "apply it first: pipeform apply --target Secret/api-token" in str(failed.value)


def test_asking_more_than_the_quota_is_refused(bench: Bench, fake_trainer: object) -> None:
    apply_quota(bench, cpu=1, gpus=0)
    with pytest.raises(PermanentError) as failed:
        bench.apply(bench.doc(quota="team", resources={"cpu": 2, "memory": "1Gi"}))
    assert "asks for more than Quota/team allows: 2 CPU cores (limit 1)" in str(failed.value)
    assert bench.run_dirs() == []


def test_a_quota_never_applied_is_refused(bench: Bench, fake_trainer: object) -> None:
    with pytest.raises(PermanentError) as failed:
        bench.apply(bench.doc(quota="team"))
    assert "Quota/team is not applied" in str(failed.value)


def test_concurrent_jobs_wait_for_a_quota_slot(
    bench: Bench, fake_trainer: object, tmp_path: Path
) -> None:
    apply_quota(bench, concurrentJobs=1)
    events: list[tuple[str, dict[str, Any]]] = []
    executor.set_progress_hook(lambda address, event: events.append((address, event)))
    slow = {"hyperparameters": {"epochs": 4}, "env": {"FAKE_EPOCH_SECONDS": {"value": "0.25"}}}
    other = Bench(bench.root, bench.handler, bench.featureset, "second-model", bench.upstream)
    outcomes: dict[str, Any] = {}
    try:
        workers = [
            threading.Thread(
                target=lambda b=b: outcomes.update({b.name: b.apply(b.doc(quota="team", **slow))})
            )
            for b in (bench, other)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    finally:
        executor.set_progress_hook(None)
    spans = sorted(
        (run["startedAt"], run["finishedAt"])
        for o in outcomes.values()
        for run in o.outputs["runs"]
    )
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], "the two runs overlapped"
    assert any(e.get("event") == "waiting" and "Quota/team" in e["message"] for _, e in events)
    assert any(e.get("event") == "progress" and "epoch" in e for _, e in events)


def test_ctrl_c_stops_the_trainer_and_the_next_apply_resumes_it(
    bench: Bench, fake: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI installs the handler in the main thread as providers load; here, whatever
    # an earlier test left, it is installed afresh (and pytest's restored afterwards)
    monkeypatch.setattr(executor, "_installed", False)
    previous = signal.getsignal(signal.SIGINT)
    executor.install_interrupt_handler()
    monkeypatch.setattr(executor, "_installed", False)
    doc = bench.doc(**fake["resumable"])
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: _capture(outcome, bench, doc))
    worker.start()
    wait_for(lambda: bench.run_dirs() and any((bench.run_dirs()[0] / "checkpoints").glob("*")))
    run_id = bench.run_dirs()[0].name
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    worker.join(60)
    assert "interrupted" in str(outcome.get("error")) and "resumes it" in str(outcome.get("error"))
    assert record(bench, run_id)["status"] == "running"
    resumed = bench.apply(doc)
    assert resumed.outputs["runId"] == run_id
    assert [r["attempt"] for r in resumed.outputs["runs"]] == [1, 2]
    assert json.loads((bench.job_dir() / run_id / "result.json").read_text())["resumed_from"]
    signal.signal(signal.SIGINT, previous)


def _capture(outcome: dict[str, Any], bench: Bench, doc: dict[str, Any]) -> None:
    try:
        outcome["response"] = bench.apply(doc)
    except Exception as exc:
        outcome["error"] = exc


PIPEFORM_STAND_IN = """
import json, sys
from providers.local.settings import LocalSettings
from providers.local.training import TrainingJobHandler
from tests.training.conftest import Bench
root, featureset, doc = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
from pathlib import Path
settings = LocalSettings.from_config({"dataDir": ".pipeform/data", "maxConcurrentJobs": 2,
    "workspace": {"registry": {"type": "local"}}}, Path(root))
Bench(Path(root), TrainingJobHandler(settings), featureset).apply(doc)
"""


@pytest.mark.slow
def test_after_kill_9_of_pipeform_the_next_apply_resumes_the_run(
    bench: Bench, fake: dict[str, Any]
) -> None:
    doc = bench.doc(**fake["resumable"])
    pipeform = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PIPEFORM_STAND_IN,
            str(bench.root),
            json.dumps(bench.featureset),
            json.dumps(doc),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=os.environ.copy(),
    )
    try:
        wait_for(lambda: bench.run_dirs() and any((bench.run_dirs()[0] / "checkpoints").glob("*")))
        run_id = bench.run_dirs()[0].name
        trainer_pid = record(bench, run_id)["pid"]
    finally:
        pipeform.kill()  # SIGKILL: no handler runs in pipeform
        pipeform.wait()
    # the kernel told the orphaned trainer (PR_SET_PDEATHSIG): it checkpoints and stops
    wait_for(
        lambda: executor.process_start(trainer_pid) is None, timeout=executor.GRACE_SECONDS + 5
    )
    assert record(bench, run_id)["status"] == "running"
    resumed = bench.apply(doc)
    assert resumed.outputs["runId"] == run_id and resumed.outputs["status"] == "succeeded"
    assert [(r["attempt"], r["status"]) for r in resumed.outputs["runs"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert json.loads((bench.job_dir() / run_id / "result.json").read_text())["resumed_from"]


def test_nodes_beyond_one_machine_are_refused_when_validating(bench: Bench) -> None:
    doc = bench.doc(distributed={"workers": 1, "nodes": 2})
    (problem,) = bench.handler.validate(bench.ctx, doc)
    assert "nodes is 2" in problem.message and "set nodes: 1" in problem.message
