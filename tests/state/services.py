"""A PostgreSQL cluster and an AWS emulator (moto_server) on 127.0.0.1, for the state tests.

Each is a plain process in its own process group, started once per test session by the
fixtures in ``conftest.py`` and stopped (the whole group) afterwards.

- PostgreSQL: Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``). initdb
  refuses to run as root, so as root the cluster is made and run as the ``postgres`` user
  in a temporary directory of its own. Password authentication (scram) on 127.0.0.1 only,
  no Unix socket outside that directory, fsync off (the tests kill clients, never the
  server).
- moto_server (PyPI ``moto[server]``): S3 and DynamoDB for the s3 backend.

In CI (CI=true) a missing binary fails the test; elsewhere the test skips.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.servers import (
    HOST,
    free_port,
    in_ci,
    stop_process_group,
    wait_answering,
)

READY_TIMEOUT = 60.0
PG_PASSWORD = "pipeform-test-password"  # a throwaway cluster's superuser, on loopback


def missing(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server binaries (the newest installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str = PG_PASSWORD

    def dsn(self, user: str = "postgres", password: str | None = None, db: str = "postgres") -> str:
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@{HOST}:{self.port}/{db}"


def _as_user() -> tuple[list[str], int | None, int | None]:
    """How to run the server: as root, as the postgres user (initdb refuses root)."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        missing("running as root and there is no postgres user to run PostgreSQL as")
        raise AssertionError("unreachable") from None
    return [], entry.pw_uid, entry.pw_gid


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    binaries = postgres_bin()
    if binaries is None:
        missing("PostgreSQL is not installed (Debian package postgresql; see .ci/apt-packages)")
    assert binaries is not None
    _, uid, gid = _as_user()
    base = Path(tempfile.mkdtemp(prefix="pipeform-pg-"))
    data = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if uid is not None:
        os.chown(base, uid, gid or -1)
        os.chown(pwfile, uid, gid or -1)
    port = free_port()

    def demote() -> None:
        if uid is not None:
            os.setgid(gid or 0)
            os.setuid(uid)

    subprocess.run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        preexec_fn=demote,
        cwd=base,
    )
    log = open(base / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"port={port}",
            "-c",
            f"unix_socket_directories={base}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=demote,
        start_new_session=True,
        cwd=base,
    )
    try:
        _wait_postgres(port, server)
        yield Postgres(port)
    finally:
        stop_process_group(server)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _wait_postgres(port: int, server: subprocess.Popen[bytes]) -> None:
    import psycopg

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}")
        try:
            psycopg.connect(Postgres(port).dsn(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError("postgres did not accept connections in time")


@dataclass(frozen=True)
class Moto:
    endpoint: str

    def env(self) -> dict[str, str]:
        """What a pipeform process needs to reach the emulator with dummy credentials."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def moto_binary() -> str | None:
    beside = Path(sys.executable).with_name("moto_server")
    return str(beside) if beside.exists() else shutil.which("moto_server")


@contextmanager
def running_moto(auth: bool = False) -> Iterator[Moto]:
    """moto_server on a free port; with ``auth``, every request's credentials are checked
    against the emulator's IAM (none exist, so every key is refused)."""
    binary = moto_binary()
    if binary is None:
        missing("moto_server is not installed (pip install 'moto[server]')")
    assert binary is not None
    port = free_port()
    env = {**os.environ}
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    server = subprocess.Popen(
        [binary, "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    endpoint = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        ready = wait_answering(f"{endpoint}/moto-api/", server, deadline, timeout=2, interval=0.1)
        if not ready:
            raise RuntimeError("moto_server did not answer in time")
        yield Moto(endpoint)
    finally:
        stop_process_group(server)
