"""``s3://`` Dataset sources for the local provider's data plane, with the aws settings.

``s3://bucket/key`` names one object, ``s3://bucket/prefix/`` (a trailing slash) every
object under the prefix, in key order. The region, credentials (the boto3 session of
``providers.aws``: profile or the standard chain) and endpoint come from the Workspace's
``providers.aws`` block, which the engine hands every provider.

- The fingerprint is ``s3:`` and the sha256 of each object's key, size, ETag and version
  id (HeadObject for one object; ListObjectsV2 for a prefix, which gives no version ids):
  a plan costs one request per object listing and reads no data.
- A snapshot reads the bytes through pyarrow's S3 filesystem into a staging file under the
  data directory (objects of a prefix joined: CSV without the repeated headers, JSON lines
  end to end, parquet row groups into one file), then parses it with the same code as a
  ``file://`` source (``readers.FileSource``), so errors name the s3:// URI and a line.
  The staging file's sha256 is recorded as the snapshot's ``contentSha256``. The objects
  are looked at again after the read; a change in between is retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.aws.session import AwsSettings, Clients, error_code, failure
from providers.base import JSON, PermanentError, RetryableError
from providers.local.data.readers import ColumnHint, FileSource, SourceError
from providers.local.settings import LocalSettings
from reconciler.kinds.data import CsvOptions, DataFormat

_CLIENTS: dict[str, Clients] = {}


def clients_for(config: JSON | None) -> Clients:
    """One Clients per distinct aws settings in this process (boto3 sessions are slow)."""
    key = json.dumps(config or {}, sort_keys=True)
    if key not in _CLIENTS:
        _CLIENTS[key] = Clients(AwsSettings.from_config(config))
    return _CLIENTS[key]


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise PermanentError(f"source {uri!r} names no bucket; write s3://bucket/key")
    return bucket, key


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str
    version_id: str | None

    def as_json(self) -> JSON:
        return {"key": self.key, "size": self.size, "etag": self.etag, "versionId": self.version_id}


@dataclass
class S3Source:
    uri: str
    format: DataFormat
    csv: CsvOptions
    settings: LocalSettings
    clients: Clients
    shown: str = ""
    _objects: list[S3Object] | None = field(default=None, repr=False)
    _staged: FileSource | None = field(default=None, repr=False)
    _content: str | None = None

    def __post_init__(self) -> None:
        self.shown = self.uri
        self.bucket, self.key = split_uri(self.uri)

    # --- what is there ----------------------------------------------------------------------

    def objects(self, fresh: bool = False) -> list[S3Object]:
        if self._objects is None or fresh:
            self._objects = (
                self._list() if self.key == "" or self.key.endswith("/") else [self._head()]
            )
        return self._objects

    def _s3(self) -> Any:
        return self.clients.client("s3")

    def _head(self) -> S3Object:
        doing = f"reading source {self.uri}"
        try:
            found = self._s3().head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                self._bucket_exists(doing)
                raise PermanentError(
                    f"source {self.uri} does not exist (spec.source.uri); upload it or fix the "
                    "key (a prefix of many objects ends with /)"
                ) from None
            raise failure(exc, "s3", "HeadObject", doing) from None
        return S3Object(
            self.key, int(found["ContentLength"]), str(found["ETag"]), found.get("VersionId")
        )

    def _bucket_exists(self, doing: str) -> None:
        try:
            self._s3().head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise PermanentError(
                    f"{doing}: bucket {self.bucket!r} does not exist; create it, or fix the "
                    "s3:// URI"
                ) from None
            raise failure(exc, "s3", "HeadBucket", doing) from None

    def _list(self) -> list[S3Object]:
        doing = f"listing source {self.uri}"
        found: list[S3Object] = []
        try:
            pages = self._s3().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.key):
                for item in page.get("Contents") or []:
                    if item["Key"].endswith("/") and not item["Size"]:
                        continue  # a "folder" marker
                    found.append(S3Object(item["Key"], int(item["Size"]), str(item["ETag"]), None))
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise PermanentError(
                    f"{doing}: bucket {self.bucket!r} does not exist; create it, or fix the "
                    "s3:// URI"
                ) from None
            raise failure(exc, "s3", "ListObjectsV2", doing) from None
        if not found:
            raise PermanentError(f"source {self.uri} holds no objects (spec.source.uri)")
        return sorted(found, key=lambda o: o.key)

    # --- the Source protocol (providers.local.data.readers) ---------------------------------

    def fingerprint(self, cached: JSON | None = None) -> str:
        material = json.dumps([o.as_json() for o in self.objects()], sort_keys=True)
        return "s3:" + hashlib.sha256(material.encode("utf-8")).hexdigest()

    def known_fingerprint(self, cached: JSON | None = None) -> str | None:
        return self.fingerprint(cached)

    def record(self) -> JSON:
        return {
            "objects": [o.as_json() for o in self.objects()],
            "fingerprint": self.fingerprint(),
            "contentSha256": self._content,
        }

    def snapshot_copy(self, hints: Sequence[ColumnHint], target: Path) -> Iterator[Any] | None:
        return None  # the staged bytes are parsed, never copied as the snapshot

    def place(self, row_index: int) -> str:
        if self._staged is not None:
            return self._staged.place(row_index)
        return f"row {row_index + 1:,}"

    def batches(self, hints: Sequence[ColumnHint]) -> Iterator[Any]:
        before = self.fingerprint()
        staging = self.settings.data_dir / "cache" / "s3"
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / f"{os.getpid()}-{secrets.token_hex(6)}.{self.format.value}"
        try:
            self._stage(path)
            self._staged = FileSource(self.uri, path, self.uri, self.format, self.csv)
            yield from self._staged.batches(hints)
            self._content = self._staged.fingerprint().removeprefix("sha256:")
        finally:
            path.unlink(missing_ok=True)
        self.objects(fresh=True)
        if self.fingerprint() != before:
            raise RetryableError(f"source {self.uri} changed while it was being read; trying again")

    # --- staging ----------------------------------------------------------------------------

    def _filesystem(self) -> Any:
        from pyarrow import fs  # type: ignore[import-untyped,unused-ignore]

        aws = self.clients.settings
        access, secret, token = self.clients.credentials()
        options: dict[str, Any] = {"region": aws.region}
        endpoint = aws.endpoint("s3")
        if endpoint:
            scheme, _, rest = endpoint.partition("://")
            options.update(endpoint_override=rest.rstrip("/"), scheme=scheme)
        if access and secret:
            options.update(access_key=access, secret_key=secret, session_token=token)
        return fs.S3FileSystem(**options)

    def _stage(self, path: Path) -> None:
        filesystem = self._filesystem()
        objects = self.objects()
        if self.format == DataFormat.PARQUET and len(objects) > 1:
            self._join_parquet(filesystem, objects, path)
            return
        header: bytes | None = None
        with path.open("xb") as out:
            for index, item in enumerate(objects):
                with self._open(filesystem, item) as stream:
                    first, rest = b"", b""
                    if self.format == DataFormat.CSV and self.csv.header:
                        first, rest = _first_line(stream)
                        if index == 0:
                            header = first.rstrip(b"\r\n")
                            out.write(first)
                        elif first.rstrip(b"\r\n") != header:
                            raise SourceError(
                                f"s3://{self.bucket}/{item.key} has another header than "
                                f"s3://{self.bucket}/{objects[0].key}; every object under "
                                f"{self.uri} must have the same columns",
                                rule="columns",
                            )
                    out.write(rest)
                    last = _copy(stream, out) or rest[-1:] or first[-1:]
                if last not in (b"", b"\n") and index < len(objects) - 1:
                    out.write(b"\n")

    def _open(self, filesystem: Any, item: S3Object) -> Any:
        try:
            return filesystem.open_input_stream(f"{self.bucket}/{item.key}")
        except OSError as exc:
            raise PermanentError(
                f"source s3://{self.bucket}/{item.key} cannot be read through pyarrow's S3 "
                f"filesystem ({type(exc).__name__}); check the credentials and endpoint"
            ) from None

    def _join_parquet(self, filesystem: Any, objects: list[S3Object], path: Path) -> None:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

        writer = None
        try:
            for item in objects:
                with self._open(filesystem, item) as stream:
                    table = pq.read_table(stream)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                elif table.schema != writer.schema:
                    raise SourceError(
                        f"s3://{self.bucket}/{item.key} has another schema than the first "
                        f"object under {self.uri}",
                        rule="columns",
                    )
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def _first_line(stream: Any) -> tuple[bytes, bytes]:
    """(the first line with its newline, the bytes read after it) of a pyarrow stream."""
    buffered = b""
    while b"\n" not in buffered and (chunk := stream.read(1 << 16)):
        buffered += chunk
    line, newline, rest = buffered.partition(b"\n")
    return line + newline, rest


def _copy(stream: Any, out: Any) -> bytes:
    """Copy the rest of a pyarrow stream into a file; the last byte copied (b"" if none)."""
    last = b""
    while chunk := stream.read(8 << 20):
        out.write(chunk)
        last = chunk[-1:]
    return last


def open_s3(uri: str, format: DataFormat, options: CsvOptions, settings: LocalSettings) -> S3Source:
    """The opener ``providers.local.data.readers`` registers for s3:// sources."""
    return S3Source(
        uri, DataFormat(format), options, settings, clients_for(settings.workspace.get("aws"))
    )


__all__ = ["S3Source", "open_s3"]
