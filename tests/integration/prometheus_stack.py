"""Start real Prometheus, Alertmanager and Pushgateway processes on 127.0.0.1 for tests.

The Debian packages prometheus, prometheus-alertmanager and prometheus-pushgateway give
the binaries (.ci/install-services installs them in CI). Each server gets a free port, a
temporary data directory, and stays off every other interface (Alertmanager's cluster
listener is disabled). Prometheus scrapes the Pushgateway every second, evaluates rules
every second (and resends firing alerts every second), loads rule files from the given directory and sends alerts to the
Alertmanager, which routes them to a null receiver with no grouping delay.

In CI (CI=true) a missing binary fails the test session; elsewhere tests skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import free_port, in_ci, stop_process_group, wait_answering

BINARIES = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "pushgateway": "prometheus-pushgateway",
}
READY_TIMEOUT = 30.0


def require_binaries() -> dict[str, str]:
    """Paths of the three servers; fails in CI, skips elsewhere when one is missing."""
    found = {role: shutil.which(binary) for role, binary in BINARIES.items()}
    missing = [BINARIES[role] for role, path in found.items() if path is None]
    if missing:
        message = (
            f"{', '.join(missing)} not installed (Debian packages prometheus, "
            "prometheus-alertmanager, prometheus-pushgateway; see .ci/install-services)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return {role: str(path) for role, path in found.items()}


def http_json(url: str, method: str = "GET", timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll until check returns something truthy; its last value (falsy) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@dataclass
class Stack:
    """The running servers' URLs and the rules directory Prometheus loads."""

    prometheus: str
    alertmanager: str
    pushgateway: str
    rules_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        result: list[dict[str, Any]] = http_json(url)["data"]["result"]
        return result

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = http_json(f"{self.prometheus}/api/v1/alerts")["data"][
            "alerts"
        ]
        return alerts

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = http_json(f"{self.alertmanager}/api/v2/alerts")
        return alerts


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    if wait_answering(f"{url}/-/ready", process, deadline, timeout=1, interval=0.1):
        return
    if process.poll() is not None:
        raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')[-2000:]}")
    raise RuntimeError(f"{url} not ready after {READY_TIMEOUT:.0f}s:\n{log.read_text()[-2000:]}")


def _start(args: list[str], log: Path, url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    processes.append(process)
    _ready(url, process, log)


def _configs(base: Path, rules_dir: Path, am_port: int, pg_port: int) -> tuple[Path, Path]:
    prometheus = base / "prometheus.yml"
    prometheus.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [f"{rules_dir}/*.rules.yml"],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}],
                    }
                ],
            }
        )
    )
    alertmanager = base / "alertmanager.yml"
    alertmanager.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "null",
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "null"}],
            }
        )
    )
    return prometheus, alertmanager


def _scraping(stack: Stack) -> None:
    """Wait for the first scrape of the Pushgateway and for the Alertmanager to be known
    (Prometheus's discovery hands out targets at most every 5s)."""
    if not wait_until(lambda: stack.query('up{job="pushgateway"} == 1'), READY_TIMEOUT):
        raise RuntimeError(f"Prometheus at {stack.prometheus} never scraped the Pushgateway")

    def alertmanager_known() -> Any:
        return http_json(f"{stack.prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]

    if not wait_until(alertmanager_known, READY_TIMEOUT):
        raise RuntimeError(f"Prometheus at {stack.prometheus} never found the Alertmanager")


@contextmanager
def running_stack(base: Path) -> Iterator[Stack]:
    """Start the three servers under base; stop them (and wait) when the block ends."""
    binaries = require_binaries()
    rules_dir = base / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    prom_port, am_port, pg_port = free_port(), free_port(), free_port()
    prom_config, am_config = _configs(base, rules_dir, am_port, pg_port)
    stack = Stack(
        f"http://127.0.0.1:{prom_port}",
        f"http://127.0.0.1:{am_port}",
        f"http://127.0.0.1:{pg_port}",
        rules_dir,
    )
    try:
        _start(
            [
                binaries["pushgateway"],
                f"--web.listen-address=127.0.0.1:{pg_port}",
                "--persistence.file=",  # Debian's default is a shared file in /var/lib
            ],
            base / "pushgateway.log",
            stack.pushgateway,
            stack.processes,
        )
        _start(
            [
                binaries["alertmanager"],
                f"--config.file={am_config}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                f"--storage.path={base / 'alertmanager-data'}",
            ],
            base / "alertmanager.log",
            stack.alertmanager,
            stack.processes,
        )
        _start(
            [
                binaries["prometheus"],
                f"--config.file={prom_config}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.enable-lifecycle",
                # a reload restarts Alertmanager discovery (up to 5s without one): resend
                # firing alerts every second rather than every minute
                "--rules.alert.resend-delay=1s",
                f"--storage.tsdb.path={base / 'prometheus-data'}",
            ],
            base / "prometheus.log",
            stack.prometheus,
            stack.processes,
        )
        _scraping(stack)
        yield stack
    finally:
        for process in reversed(stack.processes):
            stop_process_group(process)
