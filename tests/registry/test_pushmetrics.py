"""push_run_metrics against a tiny HTTP server that records what a Pushgateway would get.

The real Pushgateway is exercised by the monitoring integration suite; here the request
itself is checked: method, grouping path, the exact metric families and values.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trainer.config import MetricsTarget
from trainer.pushmetrics import push_run_metrics

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Recorded:
    method: str
    path: str
    body: str
    headers: dict[str, str]


@dataclass
class Gateway:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200

    def samples(self, index: int = -1) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        found = {}
        for family in text_string_to_metric_families(self.requests[index].body):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    state = Gateway(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode()
            state.requests.append(Recorded(self.command, self.path, body, dict(self.headers)))
            self.send_response(state.status)
            self.end_headers()

        do_POST = do_PUT = _record

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def push(target: MetricsTarget, status: str = "succeeded", **overrides: object) -> None:
    arguments: dict[str, object] = {
        "run_id": "run-7",
        "status": status,
        "metrics": {"auc": 0.91, "loss": 0.25},
        "duration_seconds": 12.5,
        "samples_per_second": 800.0,
        "finished_at": 1_700_000_000.0,
    }
    arguments.update(overrides)
    push_run_metrics(target, **arguments)  # type: ignore[arg-type]


def test_a_successful_run_pushes_every_metric_to_its_group(gateway: Gateway) -> None:
    target = MetricsTarget(
        pushgateway_url=gateway.url, job="churn", prior_counts={"succeeded": 4, "failed": 1}
    )
    push(target)

    (request,) = gateway.requests
    assert request.method == "POST"  # pushadd: metrics not pushed now keep their values
    assert request.path == "/metrics/job/pipeform_trainer/pipeform_job/churn"
    assert gateway.samples() == {
        ("pipeform_training_run_succeeded", ()): 1.0,
        ("pipeform_training_run_finished_timestamp_seconds", ()): 1_700_000_000.0,
        ("pipeform_training_run_last_success_timestamp_seconds", ()): 1_700_000_000.0,
        ("pipeform_training_run_duration_seconds", ()): 12.5,
        ("pipeform_training_validation_metric", (("metric", "auc"),)): 0.91,
        ("pipeform_training_validation_metric", (("metric", "loss"),)): 0.25,
        ("pipeform_training_samples_per_second", ()): 800.0,
        ("pipeform_training_runs_total", (("result", "succeeded"),)): 5.0,
        ("pipeform_training_runs_total", (("result", "failed"),)): 1.0,
        ("pipeform_training_runs_total", (("result", "gated"),)): 0.0,
    }


def test_a_gated_run_keeps_the_last_success_time_untouched(gateway: Gateway) -> None:
    target = MetricsTarget(pushgateway_url=gateway.url, job="churn")
    push(target, status="gated", samples_per_second=None, prior_counts={"succeeded": 2})

    samples = gateway.samples()
    assert samples[("pipeform_training_run_succeeded", ())] == 0.0
    names = {name for name, _ in samples}
    assert "pipeform_training_run_last_success_timestamp_seconds" not in names
    assert "pipeform_training_samples_per_second" not in names
    assert samples[("pipeform_training_runs_total", (("result", "gated"),))] == 1.0
    assert samples[("pipeform_training_runs_total", (("result", "succeeded"),))] == 2.0


def test_a_timed_out_run_counts_as_failed_and_labels_are_added(gateway: Gateway) -> None:
    target = MetricsTarget(
        pushgateway_url=gateway.url,
        job="churn",
        labels={"team": "risk", "bad-name": "x", "job": "clash"},
    )
    push(target, status="timed-out", metrics={})

    samples = gateway.samples()
    assert samples[("pipeform_training_runs_total", (("result", "failed"), ("team", "risk")))] == 1
    assert samples[("pipeform_training_run_succeeded", (("team", "risk"),))] == 0


def test_credentials_in_the_url_become_basic_auth_and_stay_out_of_logs(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    url = gateway.url.replace("http://", "http://pusher:s3cret@")
    gateway.status = 500
    with caplog.at_level(logging.WARNING, logger="trainer.pushmetrics"):
        push(MetricsTarget(pushgateway_url=url, job="churn"))

    (request,) = gateway.requests
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"pusher:s3cret").decode()
    )
    assert "could not push metrics of run run-7" in caplog.text
    assert "s3cret" not in caplog.text


def test_an_unreachable_gateway_is_a_warning_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.integration.mlflow_server import free_port

    target = MetricsTarget(pushgateway_url=f"http://127.0.0.1:{free_port()}", job="churn")
    with caplog.at_level(logging.WARNING, logger="trainer.pushmetrics"):
        push(target)  # must not raise
    assert "could not push metrics of run run-7 to the Pushgateway" in caplog.text


def test_no_url_means_no_push(gateway: Gateway) -> None:
    push(MetricsTarget(job="churn"))
    assert gateway.requests == []


def test_importable_without_torch() -> None:
    code = "import sys, trainer.pushmetrics; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
