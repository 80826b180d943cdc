"""The local registry: versions, aliases, idempotency, content-addressed artifacts, crashes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainer.config import RegistryTarget
from trainer.registry import ModelVersion, open_registry
from trainer.registry.local import (
    LocalRegistry,
    RegistryError,
    RegistryLookupError,
    package_digest,
)

ROOT = Path(__file__).resolve().parents[2]
LINEAGE = {  # the shape of the trainer's package metadata.json
    "run_id": "run-1",
    "lineage": {
        "address": "TrainingJob/churn",
        "featureset": "FeatureSet/churn@fs-0123",
        "dataset_snapshots": ["ds-abc"],
        "git_commit": None,
    },
    "config": {"hyperparameters": {"learning_rate": 0.01, "epochs": 3}, "model": {"type": "mlp"}},
    "metrics": {"auc": 0.91, "loss": 0.25},
    "training": {"history": [{"epoch": 1, "loss": 0.3}]},
}


def register(
    registry: LocalRegistry, package: Path, run_id: str, model: str = "churn"
) -> ModelVersion:
    return registry.register(package, model, run_id=run_id, tags={"team": "risk"}, lineage=LINEAGE)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_register_copies_the_package_to_its_content_address(tmp_path: Path, package: Path) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    version = register(registry, package, "run-1")

    digest = package_digest(package)
    expected = tmp_path / "registry" / "artifacts" / "sha256" / digest[:2] / digest
    assert version.version == 1
    assert version.uri == str(expected)
    assert version.package_sha256 == digest
    assert tree_digest(expected) == tree_digest(package)
    assert version.tags == {"team": "risk"}
    assert version.lineage == LINEAGE
    assert version.created_at.endswith("Z")
    # the stored copy is read-only: nobody edits a registered model in place
    assert {stat.S_IMODE(p.stat().st_mode) for p in expected.rglob("*") if p.is_file()} == {0o444}


def test_open_registry_defaults_to_the_local_registry(tmp_path: Path, package: Path) -> None:
    target = RegistryTarget(uri=str(tmp_path / "reg"), model="churn")
    registry = open_registry(target)
    assert isinstance(registry, LocalRegistry)
    assert registry.register(package, "churn", run_id="r", tags={}, lineage={}).version == 1


def test_versions_increment_per_model_and_share_identical_artifacts(
    tmp_path: Path, package: Path
) -> None:
    registry = LocalRegistry(tmp_path)
    first = register(registry, package, "run-1")
    second = register(registry, package, "run-2")
    other = register(registry, package, "run-1", model="fraud")

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.uri == second.uri == other.uri  # same bytes, one copy
    assert len(list((tmp_path / "artifacts" / "sha256").glob("*/*"))) == 1
    assert [v.run_id for v in registry.versions("churn")] == ["run-1", "run-2"]
    assert registry.get("churn").version == 2  # latest
    assert registry.get("churn", version=1).run_id == "run-1"


def test_register_is_idempotent_by_run_id(tmp_path: Path, package: Path) -> None:
    registry = LocalRegistry(tmp_path)
    first = register(registry, package, "run-1")
    (package / "metadata.json").write_text(
        "{}"
    )  # even a different package: the run's version stays
    again = register(registry, package, "run-1")

    assert again == first
    assert [v.version for v in registry.versions("churn")] == [1]


def test_aliases_move_only_when_asked(tmp_path: Path, package: Path) -> None:
    registry = LocalRegistry(tmp_path)
    register(registry, package, "run-1")
    registry.set_alias("churn", "champion", 1)
    register(registry, package, "run-2")

    assert registry.get("churn", alias="champion").version == 1  # a new version moves nothing
    registry.set_alias("churn", "champion", 2)
    assert registry.get("churn", alias="champion").version == 2
    assert registry.get("churn", version=1).aliases == ()
    assert registry.get("churn", version=2).aliases == ("champion",)


def test_unknown_names_are_errors_that_list_what_exists(tmp_path: Path, package: Path) -> None:
    registry = LocalRegistry(tmp_path)
    register(registry, package, "run-1")
    registry.set_alias("churn", "champion", 1)

    with pytest.raises(
        KeyError, match=r"model 'fraud' is not registered .*registered models: churn"
    ):
        registry.get("fraud")
    with pytest.raises(RegistryLookupError, match=r"no version 7 \(versions: 1\)"):
        registry.get("churn", version=7)
    with pytest.raises(RegistryLookupError, match=r"no alias 'prod' \(aliases: champion -> 1\)"):
        registry.get("churn", alias="prod")
    with pytest.raises(RegistryLookupError, match=r"no version 3"):
        registry.set_alias("churn", "champion", 3)
    with pytest.raises(RegistryError, match="reserved"):
        registry.set_alias("churn", "latest", 1)
    with pytest.raises(ValueError, match="not both"):
        registry.get("churn", version=1, alias="champion")
    assert str(RegistryLookupError("plain text")) == "plain text"  # not KeyError's quoting


def test_reading_an_empty_place_creates_nothing(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "nothing-here")
    with pytest.raises(RegistryLookupError, match="does not exist yet"):
        registry.get("churn")
    with pytest.raises(RegistryLookupError, match="does not exist yet"):
        registry.versions("churn")
    assert not (tmp_path / "nothing-here").exists()


def test_bad_packages_are_refused_with_the_path(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "reg")
    with pytest.raises(RegistryError, match=r"package directory .*missing.* does not exist"):
        register(registry, tmp_path / "missing", "run-1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="is empty"):
        register(registry, tmp_path / "empty", "run-1")


def test_package_digest_follows_names_and_bytes_only(tmp_path: Path, package: Path) -> None:
    digest = package_digest(package)
    moved = tmp_path / "elsewhere"
    package.rename(moved)
    assert package_digest(moved) == digest
    (moved / "signature.json").rename(moved / "signature2.json")
    assert package_digest(moved) != digest


def test_lineage_is_queryable_with_sqlite(tmp_path: Path, package: Path) -> None:
    """The query shown in docs/reference/registry.md."""
    registry = LocalRegistry(tmp_path)
    register(registry, package, "run-1")
    with sqlite3.connect(tmp_path / "registry.db") as db:
        rows = db.execute(
            "SELECT v.version, v.run_id, json_extract(v.lineage, '$.lineage.address'), a.alias "
            "FROM versions v LEFT JOIN aliases a ON a.model = v.model AND a.version = v.version "
            "WHERE v.model = 'churn' ORDER BY v.version"
        ).fetchall()
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert rows == [(1, "run-1", "TrainingJob/churn", None)]


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from trainer.registry.local import LocalRegistry

    root, package, name, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.005)
    registry = LocalRegistry(root)
    for i in range(8):
        for run in (f"{name}-{i}", f"shared-{i}"):
            v = registry.register(package, "churn", run_id=run, tags={}, lineage={"by": name})
            print(run, v.version, flush=True)
    """
)


def test_two_processes_never_share_a_version(tmp_path: Path, package: Path) -> None:
    start = time.time() + 1.5  # both wait for the same instant, then race
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "reg"), str(package), name, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    failed = [err[-3000:] for (_, err), w in zip(outputs, workers, strict=True) if w.returncode]
    assert not failed, "\n".join(failed)  # the traceback's end: the error itself

    seen: dict[str, set[int]] = {}
    for stdout, _ in outputs:
        for line in stdout.splitlines():
            run, version = line.split()
            seen.setdefault(run, set()).add(int(version))
    # each run got exactly one version, even the runs both processes registered
    assert all(len(versions) == 1 for versions in seen.values()), seen
    versions = LocalRegistry(tmp_path / "reg").versions("churn")
    assert [v.version for v in versions] == list(range(1, 25))
    assert sorted(v.run_id for v in versions) == sorted(seen)


CRASH = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import trainer.registry.local as local

    where = sys.argv[3]
    if where == "before-commit":
        local.LocalRegistry._insert_version = lambda *args, **kwargs: os._exit(9)
    else:
        copy = local._copy_file
        def crash_after_first(source, target):
            copy(source, target)
            os._exit(9)
        local._copy_file = crash_after_first
    local.LocalRegistry(Path(sys.argv[1])).register(
        Path(sys.argv[2]), "churn", run_id="run-1", tags={}, lineage={}
    )
    """
)


@pytest.mark.parametrize("where", ["before-commit", "mid-copy"])
def test_a_crash_never_leaves_a_version_without_its_artifact(
    tmp_path: Path, package: Path, where: str
) -> None:
    root = tmp_path / "reg"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(root), str(package), where],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr

    registry = LocalRegistry(root)
    with pytest.raises(RegistryLookupError, match="registered models: none yet"):
        registry.versions("churn")
    digest = package_digest(package)
    published = root / "artifacts" / "sha256" / digest[:2] / digest
    if where == "before-commit":
        assert tree_digest(published) == tree_digest(package)  # an orphan, complete
    else:
        assert not published.exists()  # half a copy is never at the content address

    version = registry.register(package, "churn", run_id="run-1", tags={}, lineage={})
    assert version.version == 1
    assert tree_digest(Path(version.uri)) == tree_digest(package)
    assert json.loads(json.dumps(version.lineage)) == {}
