"""The s3 backend's objects: one small log object per write whatever the state's size,
a snapshot every COMPACT_EVERY logs, and a read of snapshot plus the logs after it that
gives back the same state, versions and journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.state import s3
from reconciler.state.model import JournalEntry, now
from tests.state.conftest import BUCKET, aws_client, make_spot
from tests.state.test_conformance import resource


def objects(spot_key: str, moto: object) -> dict[str, int]:
    listed = aws_client(moto, "s3").list_objects_v2(Bucket=BUCKET, Prefix=spot_key + "/")  # type: ignore[arg-type]
    return {o["Key"][len(spot_key) + 1 :]: o["Size"] for o in listed.get("Contents", [])}


def test_each_write_is_one_small_object_and_compaction_keeps_everything(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3, "COMPACT_EVERY", 5)
    spot = make_spot("s3", tmp_path, request)
    moto = request.getfixturevalue("moto")
    backend = spot.open()
    serial, sizes = 0, []
    for n in range(12):
        entry = JournalEntry("pipeform apply", "me@here", now(), now(), None, None, n, n + 1)
        serial = backend.put(serial, resource(f"Quota/r{n:02d}", n), entry)
        found = objects(spot.block["key"], moto)
        logs = sorted(k for k in found if k.startswith("log/"))
        assert len(logs) == n + 1, "a write made more or less than one log object"
        sizes.append(found[logs[-1]])
    assert max(sizes) < 2 * min(sizes), f"log objects grow with the state: {sizes}"
    found = objects(spot.block["key"], moto)
    assert sorted(k for k in found if k.startswith("snapshot/")) == [
        "snapshot/000000000005.json",
        "snapshot/000000000010.json",
    ]
    assert "meta.json" in found

    fresh = spot.open("read")
    assert fresh.read() == backend.read()
    assert fresh.read().serial == 12 and len(fresh.read().resources) == 12
    assert [v.serial for v in fresh.versions(100)] == list(range(1, 13))
    assert [e.serial_after for e in fresh.journal(100)] == list(range(1, 13))
    assert set(fresh.state_at(7).resources) == {f"Quota/r{n:02d}" for n in range(7)}
    spot.close()
