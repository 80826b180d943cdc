"""Fixtures for the state backend tests: one PostgreSQL cluster and one moto_server per
session, and ``spot``: a fresh place for a state on a given backend (a SQLite file, a
schema of its own in the shared database, a prefix of its own in the shared bucket)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.state import open_backend
from reconciler.state.backend import Access, StateBackend
from tests.state.services import Moto, Postgres, running_moto, running_postgres

DSN_ENV = "PIPEFORM_TEST_PG_DSN"
BUCKET = "pipeform-state-tests"
LOCK_TABLE = "pipeform-locks"
BACKENDS = ("sqlite", "postgres", "s3")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with running_moto() as server:
        make_bucket_and_table(server, BUCKET, LOCK_TABLE)
        yield server


def aws_client(server: Moto, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_bucket_and_table(server: Moto, bucket: str, table: str) -> None:
    aws_client(server, "s3").create_bucket(Bucket=bucket)
    aws_client(server, "dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@dataclass
class Spot:
    """Where one test's state lives: the Workspace's state block, the environment a
    pipeform process needs to reach it, and the backend opened in this process."""

    kind: str
    root: Path
    block: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    opened: list[StateBackend] = field(default_factory=list)

    def open(self, access: Access = "create") -> StateBackend:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            backend = open_backend(self.block, self.root, access)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.opened.append(backend)
        return backend

    def yaml(self) -> str:
        """The state block as one line of YAML flow style (JSON is YAML)."""
        import json

        return json.dumps(self.block)

    def close(self) -> None:
        for backend in self.opened:
            backend.close()


def make_spot(
    kind: str, root: Path, request: pytest.FixtureRequest, name: str | None = None
) -> Spot:
    tag = name or f"t{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return Spot(kind, root, {"backend": "sqlite", "path": f".pipeform/{tag}.db"})
    if kind == "postgres":
        server: Postgres = request.getfixturevalue("postgres")
        return Spot(
            kind,
            root,
            {"backend": "postgres", "dsn": {"env": DSN_ENV}, "schema_name": tag},
            {DSN_ENV: server.dsn()},
        )
    emulator: Moto = request.getfixturevalue("moto")
    block = {
        "backend": "s3",
        "bucket": BUCKET,
        "key": f"states/{tag}",
        "region": "us-east-1",
        "lock_table": LOCK_TABLE,
        "endpoint_url": emulator.endpoint,
    }
    return Spot(kind, root, block, emulator.env())


@pytest.fixture(params=BACKENDS)
def spot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spot]:
    """A fresh, empty place for a state on each backend in turn."""
    made = make_spot(request.param, tmp_path / "tree", request)
    made.root.mkdir()
    yield made
    made.close()
