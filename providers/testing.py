"""The fake provider: a test double with a call log, and a tiny "live system" on disk.

As httpx's MockTransport is for clients, this is for the engine: it realises every kind
by writing one JSON file per object into ``config["store"]`` (so separate processes,
including ones killed with SIGKILL, see the same live objects), and appends every call
that reads or changes them (read, create, adopt, update, delete, import; not the pure
``plan``) to ``calls.jsonl`` beside them. Objects carry the ownership labels, so a create retried
after a crash adopts what it made. ``config["fail"]`` maps an address to "permanent",
"retryable" (always) or "retryable:N" (the first N calls fail) to exercise error paths.
Data-bearing kinds get a ``version`` output that is unknown until apply, which makes
changes flow downstream as they do for real Datasets and FeatureSets.

It keeps the contract it stands in for (tests/conformance checks it as it checks real
providers): a create or update that finds the object already as asked (the same spec,
the same upstream versions for data kinds, ours) adopts it as it is, so calls are
idempotent and ``version`` moves only when the object really changes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from providers.base import (
    JSON,
    OWNER_ADDRESS,
    OWNER_LINEAGE,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    ListOwnedRequest,
    ListOwnedResponse,
    OwnedObject,
    PermanentError,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadRequest,
    ReadResponse,
    RetryableError,
)

ALL_KINDS = frozenset(
    {"Dataset", "FeatureSet", "TrainingJob", "Quota", "Secret", "Alert", "SLO", "Budget"}
)
DATA_KINDS = ("Dataset", "FeatureSet", "TrainingJob")
_lock = threading.Lock()
_CHUNK = 1 << 16


class FakeProvider(Provider):
    name: ClassVar[str] = "fake"
    kinds: ClassVar[frozenset[str]] = ALL_KINDS
    replace_on: ClassVar[dict[str, frozenset[str]]] = {
        k: frozenset({"spec.immutable"}) for k in ALL_KINDS
    }
    computed_outputs: ClassVar[dict[str, tuple[str, ...]]] = {k: ("version",) for k in DATA_KINDS}

    def _store_path(self) -> Path:
        """Where the live objects are (the directory may not exist yet)."""
        path = Path(
            self.config.get("store") or os.environ.get("PIPEFORM_FAKE_STORE") or ".pipeform/fake"
        )
        return path if path.is_absolute() else self.root / path

    @property
    def store(self) -> Path:
        cached: Path | None = self.__dict__.get("_store")
        if cached is None:
            cached = self._store_path()
            cached.mkdir(parents=True, exist_ok=True)
            self.__dict__["_store"] = cached
        return cached

    @property
    def _store_dir(self) -> str:
        """The store as a string: reads join it with a name once per object."""
        cached: str | None = self.__dict__.get("_store_str")
        if cached is None:
            cached = self.__dict__["_store_str"] = os.fspath(self.store)
        return cached

    def _log(self, call: str, address: str, **extra: Any) -> None:
        if extra:
            data = (
                json.dumps({"call": call, "address": address, **extra}, sort_keys=True) + "\n"
            ).encode()
        else:  # the same text as json.dumps(..., sort_keys=True), without its overhead
            data = f'{{"address": {_quoted(address)}, "call": {_quoted(call)}}}\n'.encode()
        with _lock:
            log = self.__dict__.get("_log_file")
            if log is None:
                # kept open and unbuffered: one O_APPEND write per call, safe across processes
                log = open(self.store / "calls.jsonl", "ab", buffering=0)  # noqa: SIM115
                self.__dict__["_log_file"] = log
            log.write(data)

    def calls(self) -> list[dict[str, Any]]:
        path = self.store / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def _file(self, address: str, external_id: str | None = None) -> Path:
        """The object's file: its recorded external id, else the deterministic name."""
        return self.store / ((external_id or address.replace("/", "__")) + ".json")

    def _maybe_fail(self, address: str) -> None:
        rule = (self.config.get("fail") or {}).get(address)
        if not rule:
            return
        if rule == "permanent":
            raise PermanentError(f"fake provider: {address} fails permanently")
        if rule.startswith("retryable"):
            _, _, count = rule.partition(":")
            counter = self.store / f"{address.replace('/', '__')}.failures"
            seen = int(counter.read_text()) if counter.exists() else 0
            if not count or seen < int(count):
                counter.write_text(str(seen + 1))
                raise RetryableError(f"fake provider: {address} is busy", delay=0.01)

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        path = self._file(request.ctx.address, request.external_id)
        existing = json.loads(path.read_text()) if path.exists() else None
        body = {
            "spec": request.spec,
            "labels": request.ctx.owner_labels,
            "inputs": _inputs(request.ctx.kind, request.upstream),
        }
        if existing is not None and all(existing.get(k) == v for k, v in body.items()):
            body = existing  # already as asked: nothing to change, the version stays
        else:
            body["version"] = (existing or {}).get("version", 0) + 1
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(body, sort_keys=True))
            tmp.replace(path)
        return ApplyResponse(
            outputs={"version": body["version"], "id": path.stem},
            external_id=path.stem,
            observed=_observed(body),
        )

    def read(self, request: ReadRequest) -> ReadResponse:
        self._log("read", request.ctx.address)
        name = request.external_id or request.ctx.address.replace("/", "__")  # as _file
        stem = name.rpartition("/")[2]
        try:  # one open, no exists() first: reading is what a plan does for every object
            fd = os.open(os.path.join(self._store_dir, name + ".json"), os.O_RDONLY)
        except FileNotFoundError:
            return ReadResponse(exists=False)
        try:  # raw reads: a file object costs more than the read itself here
            data = os.read(fd, _CHUNK)
            if len(data) == _CHUNK:  # a short read of a regular file is its end
                chunks = [data]
                while chunks[-1]:
                    chunks.append(os.read(fd, _CHUNK))
                data = b"".join(chunks)
        finally:
            os.close(fd)
        body = json.loads(data.decode())  # a str skips detect_encoding
        return ReadResponse(
            True, _observed(body), {"version": body.get("version"), "id": stem}, stem
        )

    def plan(self, request: PlanRequest) -> PlanResponse:
        # not logged: a plan is a pure function of its request, made for every resource on
        # every plan, and the log is for what touches the live objects
        response = super().plan(request)
        if request.ctx.kind not in DATA_KINDS:
            return response
        upstream = _inputs(request.ctx.kind, request.upstream)
        if any(v == "(known after apply)" for v in upstream.values()):
            fingerprint = "(known after apply)"
        else:
            fingerprint = json.dumps(
                {"spec": request.desired_spec.get("spec"), "upstream": upstream}, sort_keys=True
            )
        return PlanResponse(response.requires_replace, response.unknown_outputs, fingerprint)

    def create(self, request: ApplyRequest) -> ApplyResponse:
        self._log("create", request.ctx.address)
        self._maybe_fail(request.ctx.address)
        path = self._file(request.ctx.address)
        if path.exists():
            labels = json.loads(path.read_text()).get("labels", {})
            if labels != request.ctx.owner_labels:
                raise PermanentError(
                    f"{path.stem} exists and is not ours (labels {labels}); "
                    f"import it with pipeform import {request.ctx.address} {path.stem}"
                )
            self._log("adopt", request.ctx.address)
        return self._write(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        self._log("update", request.ctx.address)
        self._maybe_fail(request.ctx.address)
        return self._write(request)

    def delete(self, request: DeleteRequest) -> None:
        self._log("delete", request.ctx.address)
        self._maybe_fail(request.ctx.address)
        self._file(request.ctx.address, request.external_id).unlink(missing_ok=True)

    def import_(self, request: ImportRequest) -> ImportResponse:
        self._log("import", request.ctx.address, id=request.id)
        path = self.store / f"{request.id}.json"
        if not path.exists():
            raise PermanentError(f"no object {request.id!r} to import")
        body = json.loads(path.read_text())
        body["labels"] = request.ctx.owner_labels
        path.write_text(json.dumps(body, sort_keys=True))
        return ImportResponse(
            _observed(body),
            body.get("spec"),
            {"version": body["version"], "id": path.stem},
            path.stem,
        )

    def list_owned(self, request: ListOwnedRequest) -> ListOwnedResponse:
        """The objects in the store (not logged: it is no call on one object)."""
        found = []
        for path in sorted(self._store_path().glob("*.json")):
            labels = json.loads(path.read_text()).get("labels") or {}
            address = labels.get(OWNER_ADDRESS)
            if address:
                lineage = str(labels.get(OWNER_LINEAGE) or "")
                found.append(OwnedObject(address, lineage, path.stem, str(path)))
        return ListOwnedResponse(found)


def _inputs(kind: str, upstream: Mapping[str, JSON]) -> JSON:
    """The versions of the data-bearing objects a data-bearing object is made from."""
    if kind not in DATA_KINDS:
        return {}
    return {
        a: o.get("version") for a, o in sorted(upstream.items()) if a.split("/", 1)[0] in DATA_KINDS
    }


def _quoted(text: str) -> str:
    return json.encoder.encode_basestring_ascii(text)  # what json.dumps writes for a str


def _observed(body: JSON) -> JSON:
    return {"spec": body.get("spec", {}).get("spec"), "version": body.get("version")}
