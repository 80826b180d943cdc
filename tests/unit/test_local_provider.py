"""The local provider's Quota and Secret: files, permissions, fingerprints, errors, the CLI.

The protocol contract (adoption, idempotent delete, read-only reads, ownership) is in
tests/conformance; this module checks what is particular to the local provider, and
that a secret value reaches no file but its store file and no output of the CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from providers import base
from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    PermanentError,
    ReadRequest,
    ResourceContext,
)
from providers.local import LocalProvider
from providers.local.quota import recorded_limits
from providers.local.secret_store import SecretStore
from tests.conformance.cases import document
from tests.conftest import run_cli

LINEAGE = "33333333-3333-4333-8333-333333333333"
ENV_VAR = "PIPEFORM_TEST_SECRET"


def ctx(root: Path, kind: str, name: str, lineage: str = LINEAGE) -> ResourceContext:
    return ResourceContext(f"{kind}/{name}", kind, name, lineage, root)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider({"dataDir": ".pipeform/data"}, tmp_path)


@pytest.fixture
def value(monkeypatch: pytest.MonkeyPatch) -> str:
    """A random secret value in ENV_VAR."""
    secret = "v-" + secrets.token_urlsafe(24)
    monkeypatch.setenv(ENV_VAR, secret)
    return secret


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def create(provider: LocalProvider, kind: str, name: str, spec: dict[str, Any]) -> ApplyResponse:
    return provider.create(
        ApplyRequest(ctx(provider.root, kind, name), document(kind, name, spec), None, {}, None, {})
    )


def update(
    provider: LocalProvider,
    kind: str,
    name: str,
    before: dict[str, Any],
    after: dict[str, Any],
    prior: ApplyResponse,
) -> ApplyResponse:
    return provider.update(
        ApplyRequest(
            ctx(provider.root, kind, name),
            document(kind, name, after),
            document(kind, name, before),
            prior.outputs,
            prior.external_id,
            {},
        )
    )


def read(provider: LocalProvider, kind: str, name: str, spec: dict[str, Any]) -> base.ReadResponse:
    return provider.read(
        ReadRequest(ctx(provider.root, kind, name), document(kind, name, spec), {}, name)
    )


def leaks(value: str) -> list[bytes]:
    """The value and the encodings of it that must not be written outside its store."""
    raw = value.encode()
    return [raw, hashlib.sha256(raw).hexdigest().encode(), base64.b64encode(raw)]


# -- the provider as the engine finds it ---------------------------------------------------


def test_local_is_found_through_its_entry_point_and_realises_its_kinds() -> None:
    assert base.load("local") is LocalProvider
    assert LocalProvider.kinds == frozenset(
        {"Budget", "Dataset", "FeatureSet", "Quota", "Secret", "TrainingJob"}
    )


def test_a_kind_it_cannot_realise_yet_is_a_clear_error(provider: LocalProvider) -> None:
    with pytest.raises(PermanentError, match="cannot realise Alert resources yet"):
        provider.read(ReadRequest(ctx(provider.root, "Alert", "a"), None, {}, None))


def test_quota_and_secret_changes_never_force_a_replacement(provider: LocalProvider) -> None:
    changes: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("Quota", {"gpus": 1}, {"gpus": 2, "namespace": "team-b"}),
        ("Secret", {"from": {"env": "A"}}, {"from": {"file": "x"}}),
    ]
    for kind, before, after in changes:
        planned = provider.plan(
            base.PlanRequest(
                ctx(provider.root, kind, "n"),
                document(kind, "n", before),
                document(kind, "n", after),
                {},
                {},
            )
        )
        assert planned.requires_replace == [] and planned.unknown_outputs == []


# -- Quota ---------------------------------------------------------------------------------


def test_a_quota_is_a_json_file_of_its_limits_and_owner(provider: LocalProvider) -> None:
    created = create(provider, "Quota", "team-a", {"gpus": 2, "memory": "8Gi"})
    path = provider.root / ".pipeform/data/quotas/team-a.json"
    record = json.loads(path.read_text())
    assert record["limits"] == {"gpus": 2, "memory": "8Gi"}
    assert record["namespace"] == "team-a"  # defaults to the Quota's name
    assert record["labels"] == {
        base.OWNER_ADDRESS: "Quota/team-a",
        base.OWNER_LINEAGE: LINEAGE,
    }
    assert created.observed == {"namespace": "team-a", "limits": {"gpus": 2, "memory": "8Gi"}}
    assert created.outputs["file"] == ".pipeform/data/quotas/team-a.json"
    assert recorded_limits(provider.settings) == {"team-a": created.observed}


def test_a_quota_edited_by_hand_reads_as_drift(provider: LocalProvider) -> None:
    create(provider, "Quota", "team-a", {"gpus": 2})
    path = provider.root / ".pipeform/data/quotas/team-a.json"
    record = json.loads(path.read_text())
    record["limits"]["gpus"] = 64
    path.write_text(json.dumps(record))
    assert read(provider, "Quota", "team-a", {"gpus": 2}).observed["limits"] == {"gpus": 64}


def test_a_quota_file_pipeform_does_not_own_is_refused_with_the_import_command(
    provider: LocalProvider,
) -> None:
    path = provider.root / ".pipeform/data/quotas/team-a.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"limits": {"gpus": 1}}))
    with pytest.raises(PermanentError) as refused:
        create(provider, "Quota", "team-a", {"gpus": 2})
    message = str(refused.value)
    assert ".pipeform/data/quotas/team-a.json already exists" in message
    assert "it has no ownership labels" in message
    assert "pipeform import Quota/team-a team-a" in message
    assert json.loads(path.read_text()) == {"limits": {"gpus": 1}}
    with pytest.raises(PermanentError, match="left alone"):
        provider.delete(DeleteRequest(ctx(provider.root, "Quota", "team-a"), None, {}, "team-a"))
    assert path.exists()


def test_importing_a_quota_relabels_it_and_gives_back_its_spec(provider: LocalProvider) -> None:
    create(provider, "Quota", "team-a", {"gpus": 2, "concurrentJobs": 3})
    imported = provider.import_(
        ImportRequest(ctx(provider.root, "Quota", "team-a", "another-lineage"), "team-a")
    )
    desired = document("Quota", "team-a", {"gpus": 2, "concurrentJobs": 3})["spec"]
    assert imported.spec == desired  # so the next plan shows no change
    record = json.loads((provider.root / ".pipeform/data/quotas/team-a.json").read_text())
    assert record["labels"][base.OWNER_LINEAGE] == "another-lineage"
    with pytest.raises(PermanentError, match="no quota file"):
        provider.import_(ImportRequest(ctx(provider.root, "Quota", "nope"), "nope"))


def test_a_damaged_quota_file_is_one_clear_error(provider: LocalProvider) -> None:
    path = provider.root / ".pipeform/data/quotas/team-a.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(PermanentError, match=r"team-a.json is not valid JSON .*delete it"):
        read(provider, "Quota", "team-a", {"gpus": 1})


def test_writes_are_atomic_and_leave_no_temporary_files(provider: LocalProvider) -> None:
    prior = create(provider, "Quota", "q", {"gpus": 1})
    for gpus in range(2, 6):
        prior = update(provider, "Quota", "q", {"gpus": gpus - 1}, {"gpus": gpus}, prior)
    data = provider.root / ".pipeform/data"
    assert sorted(p.name for p in data.rglob("*") if p.is_file()) == ["q.json"]


# -- Secret: the store ---------------------------------------------------------------------


def test_the_secret_store_is_private_whatever_the_umask(
    provider: LocalProvider, value: str, loose_umask: None
) -> None:
    create(provider, "Secret", "token", {"from": {"env": ENV_VAR}})
    store = provider.root / ".pipeform/data/secrets"
    assert mode(store) == 0o700
    assert mode(store / "token.json") == 0o600
    assert mode(store / ".fingerprint-key") == 0o600
    assert len((store / ".fingerprint-key").read_bytes()) == 32
    assert SecretStore(provider.settings).value("token") == value.encode()


def test_a_store_directory_made_too_open_is_tightened(provider: LocalProvider, value: str) -> None:
    store = provider.root / ".pipeform/data/secrets"
    store.mkdir(parents=True, mode=0o755)
    store.chmod(0o755)
    create(provider, "Secret", "token", {"from": {"env": ENV_VAR}})
    assert mode(store) == 0o700


def test_outputs_and_observed_hold_fingerprints_never_the_value(
    provider: LocalProvider, value: str
) -> None:
    spec = {"from": {"env": ENV_VAR}}
    created = create(provider, "Secret", "token", spec)
    live = read(provider, "Secret", "token", spec)
    imported = provider.import_(ImportRequest(ctx(provider.root, "Secret", "token"), "token"))
    shown = json.dumps([asdict(created), asdict(live), asdict(imported)]).encode()
    for leak in leaks(value):
        assert leak not in shown
    fingerprint = created.outputs["fingerprint"]
    assert fingerprint.startswith("hmac-sha256:")
    assert created.observed == {"stored": {"token": fingerprint}, "source": fingerprint}
    assert live.observed == created.observed


def test_fingerprints_are_keyed_per_store(tmp_path: Path, value: str) -> None:
    one = LocalProvider({"dataDir": "one"}, tmp_path)
    two = LocalProvider({"dataDir": "two"}, tmp_path)
    spec = {"from": {"env": ENV_VAR}}
    first = create(one, "Secret", "token", spec).outputs["fingerprint"]
    second = create(two, "Secret", "token", spec).outputs["fingerprint"]
    assert first != second  # same value, other key: nothing to compare across stores


def test_writers_racing_to_make_the_key_all_get_the_same_one(provider: LocalProvider) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: SecretStore(provider.settings).ensure_key(), range(32)))
    assert len(keys) == 1


def test_a_rotated_source_value_reads_as_drift(
    provider: LocalProvider, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"from": {"env": ENV_VAR}}
    created = create(provider, "Secret", "token", spec)
    monkeypatch.setenv(ENV_VAR, "rotated-" + secrets.token_hex(8))
    live = read(provider, "Secret", "token", spec)
    assert live.observed["stored"] == created.observed["stored"]  # the store is unchanged
    assert live.observed["source"] != created.observed["source"]  # the source moved


def test_an_edited_store_or_a_lost_key_reads_as_drift(provider: LocalProvider, value: str) -> None:
    spec = {"from": {"env": ENV_VAR}}
    created = create(provider, "Secret", "token", spec)
    store = provider.root / ".pipeform/data/secrets"
    record = json.loads((store / "token.json").read_text())
    record["value"] = "edited by hand"
    (store / "token.json").write_text(json.dumps(record))
    assert read(provider, "Secret", "token", spec).observed != created.observed
    (store / ".fingerprint-key").unlink()
    assert read(provider, "Secret", "token", spec).observed == {
        "stored": {"token": None},
        "source": None,
    }
    repaired = update(provider, "Secret", "token", spec, spec, created)
    assert read(provider, "Secret", "token", spec).observed == repaired.observed


def test_a_file_source_is_read_from_the_spec_tree_byte_for_byte(provider: LocalProvider) -> None:
    content = b"\x00\xffbinary\n"
    (provider.root / "keys").mkdir()
    (provider.root / "keys" / "signing.bin").write_bytes(content)
    create(provider, "Secret", "signing", {"from": {"file": "keys/signing.bin"}})
    assert SecretStore(provider.settings).value("signing") == content


@pytest.mark.parametrize("written", ["../outside.txt", "/etc/hostname", "link.txt"])
def test_a_file_source_outside_the_tree_needs_allow_external_paths(
    tmp_path: Path, written: str
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    strict = LocalProvider({}, root)
    with pytest.raises(PermanentError, match=r"outside the spec tree.*allowExternalPaths"):
        create(strict, "Secret", "s", {"from": {"file": written}})
    assert not (root / ".pipeform/data/secrets/s.json").exists()
    if Path(written).is_absolute() and not Path(written).exists():
        return
    allowed = LocalProvider({"allowExternalPaths": True}, root)
    create(allowed, "Secret", "s", {"from": {"file": written}})


def test_local_targets_may_rename_and_dropping_one_removes_its_file(
    provider: LocalProvider, value: str
) -> None:
    both = {
        "from": {"env": ENV_VAR},
        "targets": [{"provider": "local"}, {"provider": "local", "name": "copy"}],
    }
    one = {"from": {"env": ENV_VAR}, "targets": [{"provider": "local", "name": "copy"}]}
    store = provider.root / ".pipeform/data/secrets"
    created = create(provider, "Secret", "token", both)
    assert (store / "token.json").exists() and (store / "copy.json").exists()
    updated = update(provider, "Secret", "token", both, one, created)
    assert not (store / "token.json").exists() and (store / "copy.json").exists()
    assert updated.external_id == "copy"
    provider.delete(
        DeleteRequest(
            ctx(provider.root, "Secret", "token"), document("Secret", "token", one), {}, "copy"
        )
    )
    assert sorted(p.name for p in store.iterdir()) == [".fingerprint-key"]


# -- Secret: errors ------------------------------------------------------------------------


def test_a_missing_environment_variable_says_which_and_how_to_fix(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(PermanentError) as missing:
        create(provider, "Secret", "token", {"from": {"env": ENV_VAR}})
    assert str(missing.value) == (
        f"environment variable {ENV_VAR} is not set (set it or change spec.from)"
    )
    monkeypatch.setenv(ENV_VAR, "")
    with pytest.raises(PermanentError, match=f"environment variable {ENV_VAR} is empty"):
        create(provider, "Secret", "token", {"from": {"env": ENV_VAR}})
    assert not (provider.root / ".pipeform/data/secrets/token.json").exists()


def test_a_missing_source_keeps_the_stored_value_with_a_note(
    provider: LocalProvider, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {"from": {"env": ENV_VAR}}
    made = create(provider, "Secret", "token", spec)
    monkeypatch.delenv(ENV_VAR)
    live = read(provider, "Secret", "token", spec)  # a plan must not fail on it
    assert live.observed == made.observed  # no drift: the stored value stands
    assert live.notes == [
        f"source not readable here: environment variable {ENV_VAR} is not set "
        "(set it or change spec.from); stored value kept"
    ]


def test_aws_secrets_manager_sources_need_the_aws_provider(provider: LocalProvider) -> None:
    spec = {"from": {"awsSecretsManager": {"secretId": "prod/token"}}}
    with pytest.raises(PermanentError, match="needs the aws provider"):
        create(provider, "Secret", "token", spec)


@pytest.mark.parametrize("target", ["kubernetes", "aws"])
def test_targets_on_other_platforms_say_to_write_one_secret_per_provider(
    provider: LocalProvider, value: str, target: str
) -> None:
    spec = {"from": {"env": ENV_VAR}, "targets": [{"provider": "local"}, {"provider": target}]}
    message = (
        f"spec.targets[1] asks for provider {target}, but this Secret is realised by the local "
        "provider"
    )
    with pytest.raises(PermanentError, match=re.escape(message)):
        create(provider, "Secret", "token", spec)
    assert not (provider.root / ".pipeform/data/secrets/token.json").exists()
    diagnostics = provider.validate(
        ctx(provider.root, "Secret", "token"), document("Secret", "token", spec)
    )
    assert len(diagnostics) == 1 and diagnostics[0].message.startswith(message)


def test_a_target_name_cannot_leave_the_store(provider: LocalProvider, value: str) -> None:
    spec = {"from": {"env": ENV_VAR}, "targets": [{"provider": "local", "name": "../escape"}]}
    with pytest.raises(PermanentError, match="cannot be used as a local name"):
        create(provider, "Secret", "token", spec)
    assert not (provider.root / ".pipeform/data/escape.json").exists()


# -- the CLI -------------------------------------------------------------------------------

WORKSPACE = """\
apiVersion: pipeform/v1
kind: Workspace
metadata: {name: ws}
spec:
  defaults: {provider: local}
"""
RESOURCES = f"""\
apiVersion: pipeform/v1
kind: Quota
metadata: {{name: team-a}}
spec: {{gpus: 2, concurrentJobs: 1}}
---
apiVersion: pipeform/v1
kind: Secret
metadata: {{name: api-token}}
spec:
  from: {{env: {ENV_VAR}}}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pipeform.yaml").write_text(WORKSPACE)
    (tmp_path / "resources.yaml").write_text(RESOURCES)
    return tmp_path


def environment(secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["NO_COLOR"] = "1"
    if secret is not None:
        env[ENV_VAR] = secret
    return env


def files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


def test_apply_writes_the_value_only_to_its_store_file(tree: Path) -> None:
    secret = "v-" + secrets.token_urlsafe(24)
    env = environment(secret)
    applied = run_cli("apply", "--auto-approve", str(tree), env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (tree / ".pipeform/state.db").is_file()
    shown = run_cli("state", "show", "Secret/api-token", "-C", str(tree), env=env)
    planned = run_cli("plan", "--json", str(tree), env=env)
    assert shown.returncode == 0 and planned.returncode == 0
    store_file = ".pipeform/data/secrets/api-token.json"
    leaked_to: dict[bytes, list[str]] = {}
    for leak in leaks(secret):
        leaked_to[leak] = files_holding(tree, leak)
        for result in (applied, shown, planned):
            assert leak.decode() not in result.stdout + result.stderr
    raw, hashed, encoded = leaks(secret)
    assert leaked_to == {raw: [store_file], hashed: [], encoded: []}
    assert "hmac-sha256:" in shown.stdout  # state records the fingerprint instead


def test_a_rotated_environment_variable_is_planned_and_applied_as_an_update(tree: Path) -> None:
    first, second = "v1-" + secrets.token_hex(16), "v2-" + secrets.token_hex(16)
    assert run_cli("apply", "--auto-approve", str(tree), env=environment(first)).returncode == 0
    unchanged = run_cli("plan", "--detailed-exitcode", str(tree), env=environment(first))
    assert unchanged.returncode == 0, unchanged.stdout
    rotated = run_cli("plan", "--detailed-exitcode", str(tree), env=environment(second))
    assert rotated.returncode == 2, rotated.stdout + rotated.stderr
    assert "Secret/api-token  will be updated in place" in rotated.stdout
    assert "Quota/team-a" not in rotated.stdout  # nothing else moves
    for value in (first, second):
        assert value not in rotated.stdout + rotated.stderr
    applied = run_cli("apply", "--auto-approve", str(tree), env=environment(second))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    store = SecretStore(LocalProvider({}, tree).settings)
    assert store.value("api-token") == second.encode()
    settled = run_cli("plan", "--detailed-exitcode", str(tree), env=environment(second))
    assert settled.returncode == 0, settled.stdout
