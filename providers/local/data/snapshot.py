"""Immutable, content-addressed Dataset snapshots: stream, validate, write, then make visible.

A snapshot is ``<dataDir>/datasets/<name>/snapshots/<id>/`` holding ``data.parquet``,
``report.json`` and ``manifest.json``. Its id is ``ds-`` and 24 hex digits of the sha256 of
the source's fingerprint, the spec's source options, schema and rules, and the reader
version: the same bytes under the same spec give the same id, and an existing snapshot
that verifies (its parquet's sha256 matches the manifest) is reused, never rewritten.

The batches stream into a parquet file in a temporary directory beside the snapshots
(``.tmp-<id>-<pid>-<random>``) while ``Validator`` checks them, written on a thread of its
own (``sink``); the files are fsynced and the directory renamed into place only when every
rule passed. The source is read once: when its fingerprint is not known beforehand (from
this process or the dataset's record), the directory is ``.tmp-pending-...`` and the
snapshot is named by the fingerprint computed while streaming; a snapshot of that name
that already exists is reused, as it would have been had the name been known first. On failure the temporary
directory is removed and the report is kept as ``reports/<time>-failed.json``; a temporary
directory left by a killed process is removed by the next snapshot of that dataset.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from providers.base import JSON, PermanentError
from providers.durable import fsync_dir, sha256_file
from providers.local import files
from providers.local.data import READER_VERSION
from providers.local.data.convert import arrow_type
from providers.local.data.layout import (
    SNAPSHOT_FORMAT,
    dataset_dir,
    manifest_unverified,
    snapshot_id,
    snapshot_key,
    spec_material,
)
from providers.local.data.readers import ColumnHint, Source, SourceError
from providers.local.data.sink import WRITER_OPTIONS, ParquetSink, Prefetch
from providers.local.data.validate import READING, Check, Validator, failures
from providers.local.settings import LocalSettings
from reconciler.kinds.data import ColumnType, DatasetSpec

TEMP_PREFIX = ".tmp-"
MAX_FAILURE_LINES = 10


@dataclass(frozen=True)
class Snapshot:
    id: str
    dir: Path
    manifest: JSON
    reused: bool = False

    @property
    def data(self) -> Path:
        return self.dir / "data.parquet"

    @property
    def report(self) -> Path:
        return self.dir / "report.json"


def load_manifest_unverified(directory: Path) -> JSON | None:
    """A snapshot's manifest as written (for its histograms), without hashing its data."""
    return manifest_unverified(directory)


def load_manifest(directory: Path) -> JSON | None:
    """A snapshot's manifest if the snapshot is complete and its data matches it."""
    manifest = load_manifest_unverified(directory)
    if manifest is None or not (directory / "report.json").is_file():
        return None
    try:
        actual = sha256_file(directory / "data.parquet")
    except OSError:
        return None
    return manifest if manifest.get("sha256") == actual else None


def clean_stale(snapshots: Path) -> None:
    """Remove temporary snapshot directories whose writing process is gone."""
    for entry in snapshots.glob(f"{TEMP_PREFIX}*") if snapshots.is_dir() else []:
        parts = entry.name.split("-")
        pid = int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else 0
        if pid and pid != os.getpid() and _alive(pid):
            continue
        if pid == os.getpid():
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(
    settings: LocalSettings,
    name: str,
    spec: DatasetSpec,
    source: Source,
    previous: JSON | None,
    cached: JSON | None = None,
) -> Snapshot:
    """The snapshot of ``source`` under ``spec``: reused if it exists, else written and
    validated; a failed rule raises PermanentError and leaves nothing but the report.
    ``cached`` is the source ``record()`` of the current snapshot, trusted while current."""
    snapshots = dataset_dir(settings, name) / "snapshots"
    files.ensure_dir(snapshots)
    clean_stale(snapshots)
    known = source.known_fingerprint(cached)
    sid = snapshot_id(snapshot_key(spec, known)) if known is not None else None
    if sid is not None and (existing := _existing(snapshots, sid)) is not None:
        return existing
    temp = snapshots / f"{TEMP_PREFIX}{sid or 'pending'}-{os.getpid()}-{secrets.token_hex(4)}"
    temp.mkdir(mode=0o755)
    try:
        taken = _write(settings, name, spec, source, previous, sid, temp)
        if taken.reused:
            shutil.rmtree(temp, ignore_errors=True)
            return taken
        os.replace(temp, taken.dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    files.fsync_dir(snapshots)
    return taken


def _existing(snapshots: Path, sid: str) -> Snapshot | None:
    """The snapshot ``sid`` if it exists and verifies; a damaged one is set aside."""
    final = snapshots / sid
    if not final.exists():
        return None
    manifest = load_manifest(final)
    if manifest is not None:
        return Snapshot(sid, final, manifest, reused=True)
    # damaged (not ours to trust): set it aside rather than write over it
    final.rename(snapshots / f"{TEMP_PREFIX}{sid}-broken-{secrets.token_hex(4)}")
    return None


def _hints(spec: DatasetSpec) -> list[ColumnHint]:
    return [(c.name, ColumnType(c.type)) for c in spec.schema_]


def _write(
    settings: LocalSettings,
    name: str,
    spec: DatasetSpec,
    source: Source,
    previous: JSON | None,
    sid: str | None,
    temp: Path,
) -> Snapshot:
    """Stream, validate and write into ``temp``; the snapshot it makes (or one that exists
    under the name the streamed bytes give: ``reused``)."""
    created = dt.datetime.now(dt.UTC)
    # the spark engine checks the values on Spark once the rows are written (spark_validate)
    validator = Validator(spec, source.place, previous, created, per_value=not settings.engine)
    data = temp / "data.parquet"
    checks: list[Check] = []
    try:
        schema, sha256 = _stream(source, _hints(spec), validator, data)
        if settings.engine:
            from providers.local.data.spark_validate import observe_on_spark

            observe_on_spark(validator, data, settings.engine)
        checks = validator.finish(lambda column, rows: values_at(data, column, rows))
        streamed = snapshot_id(snapshot_key(spec, source.fingerprint()))  # known by now
        if streamed != sid and (existing := _existing(temp.parent, streamed)) is not None:
            return existing
        sid = streamed
    except SourceError as exc:
        checks = [Check(exc.rule, exc.column, None, None, False, str(exc))]
    if validator.rows == 0 and spec.validation.min_rows != 0 and not failures(checks):
        checks.append(Check("minRows", None, 0, spec.validation.min_rows or 1, False,
                            f"source file {source.shown} has no data rows"))  # fmt: skip
    report = _report(name, sid, created, validator, checks)
    failed = failures(checks)
    if failed or sid is None:
        reports = dataset_dir(settings, name) / "reports"
        files.ensure_dir(reports)
        path = reports / f"{created.strftime('%Y%m%dT%H%M%S%fZ')}-failed.json"
        files.write_json(path, report)
        raise PermanentError(failure_message(name, failed, settings.shown(path)))
    fsync_dir(data)
    manifest = {
        "id": sid,
        "dataset": name,
        "createdAt": report["createdAt"],
        "source": {"uri": source.uri, **source.record()},
        "rows": validator.rows,
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "sha256": sha256,
        "readerVersion": READER_VERSION,
        "snapshotFormat": SNAPSHOT_FORMAT,
        "spec": spec_material(spec),
        "histograms": validator.histograms_summary(),
        "summary": report["summary"],
    }
    for filename, record in (("report.json", report), ("manifest.json", manifest)):
        (temp / filename).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
        fsync_dir(temp / filename)
    fsync_dir(temp)
    return Snapshot(sid, temp.parent / sid, manifest)


def _stream(
    source: Source, hints: list[ColumnHint], validator: Validator, data: Path
) -> tuple[Any, str]:
    """Fill ``data`` with the rows while the validator sees them; the table's schema and the
    file's sha256. A source whose bytes can be the snapshot is copied, then its copy checked;
    any other is read ahead on one thread, checked on this one and written on a third."""
    copied = source.snapshot_copy(hints, data)
    if copied is not None:  # its bytes reach the disk while they are checked
        flushed = threading.Thread(target=_flush, args=(data,), name="pipeform-fsync")
        flushed.start()
        try:
            with Prefetch(copied) as batches:
                for batch in batches:
                    validator.observe(batch)
        finally:
            flushed.join()
        return pq.read_schema(data), source.fingerprint().removeprefix("sha256:")
    sink = None
    schema = None
    try:
        with Prefetch(source.batches(hints)) as batches:
            for batch in batches:
                if schema is None:
                    schema = batch.schema
                    sink = _sink(data, schema)
                elif batch.schema != schema:
                    batch = _same_schema(batch, schema, source)
                assert sink is not None
                sink.put(batch)
                validator.observe(batch)
        if schema is None:  # no rows at all: an empty table of the declared columns
            schema = pa.schema([(n, arrow_type(t)) for n, t in hints])
            validator.columns = list(schema.names)  # checked as "no data rows" instead
            sink = _sink(data, schema)
        assert sink is not None
        return schema, sink.close()
    finally:
        if sink is not None:
            sink.abort()


def _flush(data: Path) -> None:
    with contextlib.suppress(OSError):  # the fsync before the rename raises it again
        fsync_dir(data)


def _sink(data: Path, schema: Any) -> ParquetSink:
    return ParquetSink(data, schema, **WRITER_OPTIONS)


def _same_schema(batch: Any, schema: Any, source: Source) -> Any:
    if batch.schema.names != schema.names:
        added = [n for n in batch.schema.names if n not in schema.names]
        raise SourceError(
            f"source file {source.shown} gains column(s) {', '.join(added) or '?'} after its first "
            "rows; declare them in spec.schema so every row is read the same way",
            rule="columns",
        )
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        changed = [f.name for f, g in zip(batch.schema, schema, strict=True) if f.type != g.type]
        raise SourceError(
            f"column(s) {', '.join(changed)} of {source.shown} change type after the first rows; "
            "declare their types in spec.schema",
            rule="type",
            column=changed[0] if changed else None,
        ) from None


def values_at(data: Path, column: str, rows: list[int]) -> list[Any]:
    """The values of ``column`` at ``rows`` (0-based) in a parquet file, read in batches."""
    wanted = sorted(set(rows))
    found: dict[int, Any] = {}
    offset, k = 0, 0
    with pq.ParquetFile(data) as parquet:
        for batch in parquet.iter_batches(columns=[column], batch_size=1 << 17):
            end = offset + batch.num_rows
            while k < len(wanted) and wanted[k] < end:
                found[wanted[k]] = batch.column(0)[wanted[k] - offset].as_py()
                k += 1
            offset = end
            if k == len(wanted):
                break
    return [found.get(r) for r in rows]


def _report(
    name: str, sid: str | None, created: dt.datetime, validator: Validator, checks: list[Check]
) -> JSON:
    failed = failures(checks)
    rows = validator.rows
    return {
        "dataset": name,
        "snapshot": None if failed else sid,
        "createdAt": created.isoformat().replace("+00:00", "Z"),
        "passed": not failed,
        "rows": rows,
        "summary": summary(rows, len(validator.columns or []), checks),
        "checks": [c.as_json() for c in checks],
    }


def summary(rows: int, columns: int, checks: list[Check]) -> str:
    failed = len(failures(checks))
    verdict = f"{len(checks) - failed} checks passed" + (f", {failed} failed" if failed else "")
    return f"{rows:,} rows, {columns} columns, {verdict}"


def failure_message(name: str, failed: list[Check], report: str) -> str:
    lines = ["  " + c.line().replace("\n", "\n  ") for c in failed[:MAX_FAILURE_LINES]]
    more = len(failed) - MAX_FAILURE_LINES
    if more > 0:
        lines.append(f"  ... and {more} more")
    what = "could not be read" if failed[0].rule in READING else "failed validation"
    return (
        f"Dataset {name} {what} ({len(failed)} check(s) failed); the current snapshot is "
        f"unchanged:\n" + "\n".join(lines) + f"\nfull report: {report}"
    )
