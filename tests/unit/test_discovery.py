"""Finding providers through entry points, with the cache that spares a scan of every
installed package: hits, misses when the environment changes, and stale entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from providers import base, discovery
from providers.testing import FakeProvider

GROUP = base.ENTRY_POINT_GROUP


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(discovery.DISABLE_ENV, raising=False)
    return tmp_path / "pipeform" / "entry-points.json"


def cached(path: Path) -> dict[str, str]:
    """This environment's cached entries of the group."""
    body = json.loads(path.read_text())
    entry = body["environments"][discovery._env_id(discovery.environment_key())]
    assert entry["key"] == discovery.environment_key()
    found: dict[str, str] = entry["groups"][GROUP]
    return found


def edit_cached(path: Path, name: str, value: str) -> None:
    body = json.loads(path.read_text())
    body["environments"][discovery._env_id(discovery.environment_key())]["groups"][GROUP][name] = (
        value
    )
    path.write_text(json.dumps(body))


def test_first_load_scans_and_caches_the_group(cache_home: Path) -> None:
    assert discovery.load(GROUP, "fake") is FakeProvider
    assert cached(cache_home)["fake"] == "providers.testing:FakeProvider"
    assert "local" in cached(cache_home)


def test_a_cached_entry_is_used_without_scanning(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discovery.load(GROUP, "fake")
    edit_cached(cache_home, "ghost", "providers.testing:FakeProvider")  # only in the cache

    def no_scan(group: str) -> dict[str, str]:
        raise AssertionError("scanned although the cache matched")

    monkeypatch.setattr(discovery, "_scan", no_scan)
    assert discovery.load(GROUP, "ghost") is FakeProvider


def test_a_changed_environment_misses_the_cache(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    discovery.load(GROUP, "fake")
    edit_cached(cache_home, "ghost", "json:dumps")
    before = discovery.environment_key()
    monkeypatch.setattr(discovery, "environment_key", lambda: [*before, ["new-dir", 1]])
    assert discovery.load(GROUP, "ghost") is None  # installed elsewhere only: not here
    body = json.loads(cache_home.read_text())
    assert len(body["environments"]) == 2  # the other environment's entry is kept


def test_only_the_last_few_environments_are_kept(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_key = discovery.environment_key()
    for i in range(discovery.MAX_ENVIRONMENTS + 3):
        monkeypatch.setattr(discovery, "environment_key", lambda i=i: [*base_key, ["d", i]])
        assert discovery.load(GROUP, "fake") is FakeProvider
    body = json.loads(cache_home.read_text())
    assert len(body["environments"]) == discovery.MAX_ENVIRONMENTS


def test_an_entry_that_no_longer_imports_is_looked_up_again(cache_home: Path) -> None:
    discovery.load(GROUP, "fake")
    edit_cached(cache_home, "fake", "providers.no_such_module:FakeProvider")  # moved since
    assert discovery.load(GROUP, "fake") is FakeProvider
    assert cached(cache_home)["fake"] == "providers.testing:FakeProvider"


def test_a_corrupt_cache_file_only_costs_a_scan(cache_home: Path) -> None:
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("{not json")
    assert discovery.load(GROUP, "local") is not None
    assert discovery.load(GROUP, "no-such-provider") is None


def test_the_cache_can_be_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(discovery.DISABLE_ENV, "0")
    assert discovery.load(GROUP, "fake") is FakeProvider
    assert not cache_home.exists()


def test_base_load_and_available_go_through_it(cache_home: Path) -> None:
    assert base.load("fake") is FakeProvider
    assert {"fake", "local", "prometheus"} <= set(base.available())
