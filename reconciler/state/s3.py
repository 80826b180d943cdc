"""S3 state backend: a snapshot object plus small ordered log objects, and a DynamoDB lock.

Every write (one resource, or a batch the applier commits together) is one new object, so
each resource's record is durable as soon as it is done and a write costs the same
whatever the state's size. Object layout under ``spec.state.key`` (the prefix)::

    meta.json                   lineage, format; written once (If-None-Match: *)
    log/000000000042.json       log object 42: the versions it writes (serial, time,
                                address, put/remove/restore, the record) and the journal
                                entries that land with them
    snapshot/000000000040.json  the whole state (lineage, serial, resources) right after
                                log object 40: a compaction, written every COMPACT_EVERY logs

A writer that expects serial S and last read log N writes log N+1 with ``If-None-Match:
*``: of two writers, one gets 412 and re-reads; if the serial moved, its write is refused
(compare-and-swap on serial). Reading is the newest snapshot plus the logs after it (at
most COMPACT_EVERY). Log objects are never rewritten or deleted: they are the kept
versions and the journal (``state versions``, ``history``, ``state restore``). A kill at
any moment leaves either the log object or nothing; a snapshot is only a shortcut.

The lock is the item ``LockID = "<bucket>/<prefix>"`` of the DynamoDB table
``spec.state.lock_table``, written with a conditional put (``attribute_not_exists``), its
holder's details in ``Info``; force-unlock deletes it on condition that its ``ID`` matches.
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler import faults
from reconciler.state import locking
from reconciler.state import versions as kept
from reconciler.state.backend import Access, StateBackend, StateConflict, StateError
from reconciler.state.model import (
    Dump,
    JournalEntry,
    LockInfo,
    ResourceState,
    State,
    Version,
    VersionRecord,
    now,
)
from reconciler.state.s3_store import Conflict, Store

FORMAT = "pipeform-s3-state/1"
COMPACT_EVERY = 100
Write = tuple[str, ResourceState | None, JournalEntry | None]


def _log(seq: int) -> str:
    return f"log/{seq:012d}.json"


def _seq(name: str) -> int:
    return int(name.rsplit("/", 1)[1].split(".", 1)[0])


class S3Backend(StateBackend):
    def __init__(self, store: Store, lineage: str) -> None:
        self.store, self.lineage = store, lineage
        self._seq = 0  # the newest log object read or written
        self._serial = 0
        self._resources: dict[str, ResourceState] = {}
        self._since_snapshot = 0
        self._synced = False

    def describe(self) -> str:
        return self.store.where

    # -- reading ------------------------------------------------------------------------------
    def _fetch(self, names: list[str]) -> list[Any]:
        if len(names) < 4:
            return [self.store.get(n) for n in names]
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(self.store.get, names))

    def _sync(self) -> None:
        """Bring the cached state up to date: the newest snapshot (first time), then the
        log objects after what was read."""
        with self.store.calls("read the state"):
            if not self._synced:
                snapshots = self.store.names("snapshot")
                if snapshots:
                    snap: Any = self.store.get(snapshots[-1])
                    self._seq, self._serial = int(snap["seq"]), int(snap["serial"])
                    self._resources = {
                        r["address"]: ResourceState.from_dict(r) for r in snap["resources"]
                    }
                self._synced = True
            names = self.store.names("log", after=_log(self._seq))
            for body in self._fetch(names):
                self._take(body)

    def _take(self, body: dict[str, Any]) -> None:
        if int(body["seq"]) != self._seq + 1:
            raise StateError(
                f"the state {self.store.where} is damaged: log object {self._seq + 1} is "
                f"missing (found {body['seq']} after {self._seq})"
            )
        rows = [(v[0], v[2], v[3], v[4]) for v in body["versions"]]
        self._resources = kept.replay(rows, self.store.where, self._resources)
        self._seq, self._serial = int(body["seq"]), int(body["serial_after"])
        self._since_snapshot += 1

    def read(self) -> State:
        self._sync()
        return State(self.lineage, self._serial, dict(self._resources))

    # -- writing ------------------------------------------------------------------------------
    def _append(
        self, expected: int | None, versions: list[list[Any]], journal: list[JournalEntry]
    ) -> int:
        """Write the next log object; expected None: a journal entry alone (no CAS)."""
        if not self._synced:
            self._sync()
        while True:
            if expected is not None and expected != self._serial:
                self._sync()
                if expected != self._serial:
                    raise StateConflict(
                        f"the state changed while this command ran (serial {expected} -> "
                        f"{self._serial}): another writer bypassed the lock. Re-run the command."
                    )
            serial = self._serial
            rows = [[serial + i + 1, *v] for i, v in enumerate(versions)]
            after = serial + len(rows)
            entries = [
                replace(e, serial_after=after).to_dict() if expected is not None else e.to_dict()
                for e in journal
            ]
            body = {"seq": self._seq + 1, "serial_before": serial, "serial_after": after,
                    "versions": rows, "journal": entries}  # fmt: skip
            for row in rows:  # before the one write that lands them all, or none
                faults.point("mid-state-write", row[2])
            try:
                with self.store.calls("write the state"):
                    self.store.put_new(_log(self._seq + 1), body)
            except Conflict:
                self._sync()  # another writer: re-read, then compare the serial again
                continue
            self._take(body)
            self._compact()
            return after

    def _compact(self) -> None:
        if self._since_snapshot < COMPACT_EVERY:
            return
        body = {"seq": self._seq, "serial": self._serial, "lineage": self.lineage,
                "resources": [r.to_dict() for r in self._resources.values()]}  # fmt: skip
        with contextlib.suppress(Conflict), self.store.calls("compact the state"):
            # Conflict: another writer compacted at the same point, with the same content
            self.store.put_new(f"snapshot/{self._seq:012d}.json", body)
        self._since_snapshot = 0

    def write_many(self, expected_serial: int, writes: list[Write]) -> int:
        versions: list[list[Any]] = []
        for address, resource, _ in writes:
            data = None if resource is None else kept.record(resource)
            versions.append([now(), address, "remove" if data is None else "put", data])
        journal = [entry for _, _, entry in writes if entry is not None]
        return self._append(expected_serial, versions, journal)

    def put(
        self, expected_serial: int, resource: ResourceState, journal: JournalEntry | None = None
    ) -> int:
        return self.write_many(expected_serial, [(resource.address, resource, journal)])

    def remove(
        self, expected_serial: int, address: str, journal: JournalEntry | None = None
    ) -> int:
        return self.write_many(expected_serial, [(address, None, journal)])

    def put_many(self, expected_serial: int, resources: list[ResourceState]) -> int:
        return self.write_many(expected_serial, [(r.address, r, None) for r in resources])

    def append_journal(self, entry: JournalEntry) -> None:
        self._append(None, [], [entry])

    # -- lock ---------------------------------------------------------------------------------
    def acquire_lock(self, info: LockInfo, timeout: float = 0.0) -> list[str]:
        def attempt(notes: list[str]) -> LockInfo | None:
            with self.store.calls(f"take the state lock in the DynamoDB table {self.store.table}"):
                while not self.store.lock_put(info):
                    holder = self.store.lock_get()
                    if holder is None:  # released meanwhile
                        continue
                    if not holder.holder_is_dead():
                        return holder
                    if self.store.lock_delete(holder.id):
                        notes.append(locking.broke_stale(holder))
                return None

        return locking.take(attempt, timeout)

    def release_lock(self, lock_id: str) -> None:
        with self.store.calls("release the state lock"):
            self.store.lock_delete(lock_id)

    def force_unlock(self, lock_id: str) -> bool:
        with self.store.calls("release the state lock"):
            return self.store.lock_delete(lock_id)

    def lock_holder(self) -> LockInfo | None:
        with self.store.calls("read the state lock"):
            return self.store.lock_get()

    # -- versions and journal -------------------------------------------------------------------
    def _logs_newest_first(self) -> Any:
        with self.store.calls("read the state's versions"):
            names = self.store.names("log")
            for start in range(len(names), 0, -16):
                yield from reversed(self._fetch(names[max(0, start - 16) : start]))

    def versions(self, limit: int = 50) -> list[Version]:
        found: list[Version] = []
        for body in self._logs_newest_first():
            for serial, at, address, operation, data in reversed(body["versions"]):
                restored = json.loads(data)["restored_from"] if operation == kept.RESTORE else None
                found.append(Version(serial, at, address, operation, restored))
            if len(found) >= limit:
                break
        return list(reversed(found[:limit]))

    def journal(self, limit: int = 50) -> list[JournalEntry]:
        found: list[JournalEntry] = []
        for body in self._logs_newest_first():
            found += [JournalEntry(**e) for e in reversed(body["journal"])]
            if len(found) >= limit:
                break
        return list(reversed(found[:limit]))

    def state_at(self, serial: int) -> State:
        self._sync()
        if not 0 <= serial <= self._serial:
            raise StateError(f"there is no state version {serial} (the newest is {self._serial})")
        rows = [r for r in self._records() if r.serial <= serial]
        start = max((i for i, r in enumerate(rows) if r.operation == kept.RESTORE), default=0)
        replayed = kept.replay(
            [(r.serial, r.address, r.operation, r.data) for r in rows[start:]], self.store.where
        )
        return State(self.lineage, serial, replayed)

    def _records(self) -> list[VersionRecord]:
        with self.store.calls("read the state's versions"):
            bodies = self._fetch(self.store.names("log"))
        return [VersionRecord(*v) for body in bodies for v in body["versions"]]

    def restore(
        self, serial: int, journal: JournalEntry, lineage: str | None = None
    ) -> tuple[int, dict[str, str]]:
        current = self.read()
        if not 1 <= serial <= current.serial:
            from reconciler.state import damage

            shown = [v.describe() for v in self.versions(20)]
            raise damage.unknown_serial(serial, shown, current.serial)
        target = self.state_at(serial).resources
        before = {a: kept.record(r) for a, r in current.resources.items()}
        changes = kept.changes(before, {a: kept.record(r) for a, r in target.items()})
        entry = replace(
            journal,
            serial_before=current.serial,
            finished_at=now(),
            results=kept.restore_results(changes),
        )
        version = [now(), "*", kept.RESTORE, kept.restore_snapshot(serial, target)]
        return self._append(current.serial, [version], [entry]), changes

    # -- migrate ------------------------------------------------------------------------------
    def dump(self) -> Dump:
        state = self.read()
        with self.store.calls("read the state's versions"):
            bodies = self._fetch(self.store.names("log"))
        return Dump(
            state.lineage,
            state.serial,
            state.resources,
            [VersionRecord(*v) for body in bodies for v in body["versions"]],
            [JournalEntry(**e) for body in bodies for e in body["journal"]],
        )

    def load(self, dump: Dump) -> None:
        """The dump as one log object (all versions, then the journal) and a snapshot."""
        with self.store.calls("write the state"):
            self.store.delete_all()
            self.store.put("meta.json", {"format": FORMAT, "lineage": dump.lineage})
            body = {"seq": 1, "serial_before": 0, "serial_after": dump.serial,
                    "versions": [[v.serial, v.at, v.address, v.operation, v.data]
                                 for v in dump.versions],
                    "journal": [e.to_dict() for e in dump.journal]}  # fmt: skip
            self.store.put(_log(1), body)
            snapshot = {"seq": 1, "serial": dump.serial, "lineage": dump.lineage,
                        "resources": [r.to_dict() for r in dump.resources.values()]}  # fmt: skip
            self.store.put("snapshot/000000000001.json", snapshot)
        self.lineage, self._synced, self._seq, self._since_snapshot = dump.lineage, False, 0, 0
        self._resources, self._serial = {}, 0


def open_s3(config: dict[str, Any], root: Path, access: Access) -> StateBackend:
    """The backend an ``s3`` state block configures; where no state exists under the
    prefix, ``existing`` and ``read`` get an empty state and create nothing."""
    store = Store(config)
    with store.calls("read the state"):
        meta = store.get("meta.json")
        if meta is None and access == "create":
            with contextlib.suppress(Conflict):  # another command made it first
                store.put_new("meta.json", {"format": FORMAT, "lineage": State.new_lineage()})
            meta = store.get("meta.json")
    if meta is None:
        from reconciler.state.sqlite import SqliteBackend

        return SqliteBackend.empty(store.where)
    if meta.get("format") != FORMAT:
        raise StateError(
            f"{store.where}meta.json is not a pipeform state ({meta.get('format')!r}); "
            "point spec.state.key at another prefix"
        )
    return S3Backend(store, str(meta["lineage"]))
