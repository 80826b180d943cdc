"""Fixtures for the controller tests: a git repository the test commits to, and real
``pipeform controller`` processes (listening on 127.0.0.1, port 0) whose JSON logs are
read as they come. Every process a test starts is killed when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PIPEFORM, SPECS
from tests.training.conftest import FAKE_TRAINER

WORKSPACE = "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: demo}\nspec: {}\n"
ENV = {
    **os.environ,
    "NO_COLOR": "1",
    "QUICKSTART_METRICS_TOKEN": "qs-token",
    "PIPEFORM_TRAINER_COMMAND": f"{sys.executable} {FAKE_TRAINER}",
}


def quota(name: str, gpus: int = 1, note: str = "") -> str:
    notes = f", annotations: {{note: {json.dumps(note)}}}" if note else ""
    return (
        f"---\napiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: {name}{notes}}}\n"
        f"spec: {{gpus: {gpus}}}\n"
    )


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        (path / ".gitignore").write_text(".pipeform/\n")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        ).stdout

    def commit(self, message: str, author: str = "alice", **files: str) -> str:
        for name, text in files.items():
            (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git(
            "-c",
            f"user.name={author}",
            "-c",
            "user.email=a@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        )
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def quickstart_repo(tmp_path: Path) -> Repo:
    path = tmp_path / "repo"
    shutil.copytree(
        SPECS / "examples" / "quickstart", path, ignore=shutil.ignore_patterns(".pipeform")
    )
    found = Repo(path)
    found.commit("quickstart")
    return found


class Controller:
    """A running ``pipeform controller``; its JSON log events collected as they come."""

    def __init__(self, repo: Repo, home: Path, *args: str, env: dict[str, str] | None = None):
        self.home = home
        command = [
            str(PIPEFORM),
            "controller",
            "--repo",
            str(repo.path),
            "--interval",
            "0.5s",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(home),
            *args,
        ]
        self.process = subprocess.Popen(
            command,
            env={**ENV, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.wait_event("listening")
        self.url = listening["url"].rstrip("/")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.raw.append(line)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait_event(self, name: str, timeout: float = 30, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for found in self.events[after:]:
                if found.get("event") == name:
                    return found
            if self.process.poll() is not None and not any(
                e.get("event") == name for e in self.events[after:]
            ):
                time.sleep(0.2)  # the reader may still be draining
                if not any(e.get("event") == name for e in self.events[after:]):
                    raise AssertionError(f"controller exited: {''.join(self.raw)[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} event in {timeout}s: {''.join(self.raw)[-3000:]}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    @property
    def tree(self) -> Path:
        return self.home / "clone"


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def lock_rows(tree: Path) -> int:
    with sqlite3.connect(tree / ".pipeform" / "state.db") as db:
        return int(db.execute("SELECT count(*) FROM lock").fetchone()[0])


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Controller]]:
    started: list[Controller] = []

    def make(repo: Repo, *args: str, home: Path | None = None, **kw: Any) -> Controller:
        found = Controller(repo, home or tmp_path / "controller", *args, **kw)
        started.append(found)
        return found

    yield make
    for found in started:
        if found.process.poll() is None:
            found.process.kill()
            found.process.wait()
