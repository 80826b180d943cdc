"""Bad backend settings: one clear error each, exit 1, no traceback, no secret shown, and
the state as it was: a DSN that does not connect, a wrong password, an unset DSN
variable, a database user without permission to create tables, a missing bucket, a lock
table that does not exist, credentials AWS refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.harness import Result
from tests.integration.servers import free_port
from tests.state.conftest import DSN_ENV, Spot, make_spot
from tests.state.services import Moto, Postgres, running_moto
from tests.state.test_conformance import ADDRESSES, APPLY, run, write_tree

SECRET = "s3cr3t-Pa55word"


def assert_one_clear_error(result: Result, *phrases: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.output and "internal error" not in result.output, result
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message, result
    assert SECRET not in result.output, "a secret was printed"


@pytest.fixture
def pg_spot(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Spot]:
    spot = make_spot("postgres", tmp_path / "tree", request)
    spot.root.mkdir()
    write_tree(spot)
    yield spot
    spot.close()


def with_env(spot: Spot, **env: str) -> Spot:
    return Spot(spot.kind, spot.root, spot.block, {**spot.env, **env})


def test_a_dsn_that_does_not_connect(pg_spot: Spot) -> None:
    assert run(pg_spot, *APPLY).returncode == 0
    before = pg_spot.open("read").dump()
    closed = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/postgres"
    for command in (APPLY, ("plan",), ("state", "list")):
        result = run(with_env(pg_spot, **{DSN_ENV: closed}), *command)
        assert_one_clear_error(
            result, "cannot connect to the PostgreSQL state database postgres://postgres@127.0.0.1"
        )
    assert pg_spot.open("read").dump() == before


def test_a_wrong_password_and_an_unset_dsn_variable(pg_spot: Spot, postgres: Postgres) -> None:
    wrong = with_env(pg_spot, **{DSN_ENV: postgres.dsn(password=SECRET)})
    assert_one_clear_error(run(wrong, *APPLY), "password authentication failed")
    unset = Spot(pg_spot.kind, pg_spot.root, pg_spot.block, {})
    assert_one_clear_error(
        run(unset, *APPLY), f"reads its connection string from ${DSN_ENV}", "which is not set"
    )
    assert not pg_spot.open("read").exists, "a state was created"


def test_a_user_who_may_not_create_tables(pg_spot: Spot, postgres: Postgres) -> None:
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute(f"CREATE ROLE reader LOGIN PASSWORD '{SECRET}'")
    limited = with_env(pg_spot, **{DSN_ENV: postgres.dsn(user="reader", password=SECRET)})
    result = run(limited, *APPLY)
    assert_one_clear_error(
        result, "cannot be created or written: permission denied for database postgres",
        "Grant the user CREATE on the database",
    )  # fmt: skip
    assert not pg_spot.open("read").exists, "a state was created"
    assert run(pg_spot, "plan").returncode == 0  # with a user who may: it works


@pytest.fixture
def s3_spot(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Spot]:
    spot = make_spot("s3", tmp_path / "tree", request)
    spot.root.mkdir()
    write_tree(spot)
    yield spot
    spot.close()


def with_block(spot: Spot, **settings: str) -> Spot:
    changed = Spot(spot.kind, spot.root, {**spot.block, **settings}, spot.env)
    write_tree(changed)
    return changed


def test_a_missing_bucket(s3_spot: Spot) -> None:
    missing = with_block(s3_spot, bucket="no-such-bucket-here")
    for command in (APPLY, ("plan",)):
        assert_one_clear_error(
            run(missing, *command),
            "the bucket no-such-bucket-here does not exist (spec.state.bucket, region us-east-1)",
        )


def test_a_lock_table_that_does_not_exist_leaves_the_state_untouched(s3_spot: Spot) -> None:
    assert run(s3_spot, *APPLY).returncode == 0
    before = s3_spot.open("read").dump()
    missing = with_block(s3_spot, lock_table="no-such-table")
    write_tree(missing, gpus=9)  # a change it would make, were the lock taken
    assert_one_clear_error(
        run(missing, *APPLY),
        "the DynamoDB lock table no-such-table does not exist in region us-east-1",
        "partition key LockID",
    )
    assert s3_spot.open("read").dump() == before
    assert set(before.resources) == ADDRESSES


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[Moto]:
    with running_moto(auth=True) as server:
        yield server


def test_credentials_aws_refuses(s3_spot: Spot, moto_with_auth: Moto) -> None:
    refused = with_block(s3_spot, endpoint_url=moto_with_auth.endpoint)
    refused = Spot(
        refused.kind,
        refused.root,
        refused.block,
        {**refused.env, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONG", "AWS_SECRET_ACCESS_KEY": SECRET},
    )
    assert_one_clear_error(run(refused, *APPLY), "AWS refused the credentials")
