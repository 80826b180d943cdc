"""s3:// locations of a version-2 RunConfig, through pyarrow's S3 filesystem.

The trainer works on local files; this module moves bytes between those files and the
object store, so the rest of it never sees a URI:

- ``localise`` fetches every s3:// input (the feature tables, the transform) into
  ``<output_dir>/inputs/``, hashing the bytes as they arrive, and refuses a table whose
  sha256 is not the recorded one (``BadInputError``, exit 3) or that is missing; it returns
  the config with local paths, and a ``CheckpointMirror`` when checkpoints go to s3.
- ``CheckpointMirror`` copies each checkpoint (and its ``.sha256`` sidecar) to the s3://
  checkpoint directory as it is written, deletes pruned ones there, and before a run
  resumes fetches the ones a fresh machine lacks.
- ``upload_package`` copies the package to ``<package_uri>/sha256/<digest>/`` unless it is
  there already (the key is the digest of its files).

Region and endpoint come from ``config.object_store``; credentials from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), as the AWS SDK
inside pyarrow reads them. The trainer imports nothing from reconciler or providers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from trainer.config import S3_SCHEME, ObjectStore, RunConfig, Table
from trainer.errors import BadInputError, TrainerError
from trainer.fsio import CHUNK, write_stream_atomic


def is_remote(location: str | None) -> bool:
    return bool(location) and str(location).startswith(S3_SCHEME)


def _path(uri: str) -> str:
    """pyarrow's name for an s3:// location: bucket/key."""
    return uri.removeprefix(S3_SCHEME).rstrip("/")


def filesystem(store: ObjectStore | None) -> Any:
    """pyarrow's S3 filesystem for the config's object store."""
    from pyarrow import fs

    store = store or ObjectStore()
    options: dict[str, Any] = {"region": store.region}
    if store.endpoint_url:
        scheme, _, rest = store.endpoint_url.partition("://")
        options.update(endpoint_override=rest.rstrip("/"), scheme=scheme)
    return fs.S3FileSystem(**options)


def fetch(filesystem: Any, uri: str, target: Path, sha256: str | None, what: str) -> Path:
    """Copy an object to target (atomically), checking its sha256 when one is given."""
    digest = hashlib.sha256()
    expected = (sha256 or "").removeprefix("sha256:").lower()
    if expected and target.is_file():
        from trainer.fsio import sha256_file

        if sha256_file(target) == expected:
            return target  # fetched by an earlier attempt of this run

    def copy(out: Any) -> None:
        try:
            stream = filesystem.open_input_stream(_path(uri))
        except FileNotFoundError:
            raise BadInputError(
                f"the {what} {uri} does not exist; re-materialise the FeatureSet "
                "(pipeform apply) and run again"
            ) from None
        except OSError as error:
            raise TrainerError(f"cannot read the {what} {uri}: {_first_line(error)}") from None
        with stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected and actual != expected:
            raise BadInputError(
                f"the {what} {uri} has sha256 {actual[:16]}…, not the recorded "
                f"{expected[:16]}…: it changed after the FeatureSet was materialised; "
                "re-materialise it (pipeform apply) instead of editing it"
            )

    write_stream_atomic(target, copy)
    return target


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()
    return text[0] if text else type(error).__name__


def localise(config: RunConfig) -> tuple[RunConfig, CheckpointMirror | None]:
    """The config with its s3:// inputs fetched and checked, and the checkpoint mirror."""
    if not config.remote_locations():
        return config, None
    filesystem_ = filesystem(config.object_store)
    inputs_dir = Path(config.output_dir) / "inputs"
    inputs = config.inputs

    def table(found: Table, what: str) -> Table:
        if not is_remote(found.path):
            return found
        target = inputs_dir / f"{found.sha256.removeprefix('sha256:')}.parquet"
        fetch(filesystem_, found.path, target, found.sha256, what)
        return found.model_copy(update={"path": str(target)})

    update: dict[str, Any] = {
        "train": table(inputs.train, "train table"),
        "validation": table(inputs.validation, "validation table"),
    }
    if is_remote(inputs.transform_path):
        uri = str(inputs.transform_path)
        target = inputs_dir / Path(_path(uri)).name
        digest = Path(_path(uri)).stem  # the key is the transform's sha256
        fetch(filesystem_, uri, target, digest if len(digest) == 64 else None, "transform file")
        update["transform_path"] = str(target)
    changes: dict[str, Any] = {"inputs": inputs.model_copy(update=update)}
    mirror = None
    if is_remote(config.checkpoint.dir):
        local = Path(config.output_dir) / "checkpoints"
        mirror = CheckpointMirror(filesystem_, config.checkpoint.dir, local)
        changes["checkpoint"] = config.checkpoint.model_copy(update={"dir": str(local)})
    return config.model_copy(update=changes), mirror


class CheckpointMirror:
    """Keeps an s3:// checkpoint directory a copy of the local one."""

    def __init__(self, filesystem: Any, uri: str, local: Path) -> None:
        self.filesystem = filesystem
        self.remote = _path(uri)
        self.local = local

    def _remote_names(self) -> set[str]:
        from pyarrow import fs

        found = self.filesystem.get_file_info(fs.FileSelector(self.remote, allow_not_found=True))
        return {Path(info.path).name for info in found if info.type == fs.FileType.File}

    def pull(self) -> int:
        """Fetch the checkpoints this machine lacks (a run resumed elsewhere); how many."""
        fetched = 0
        for name in sorted(self._remote_names()):
            target = self.local / name
            if not target.exists():
                fetch(self.filesystem, f"{S3_SCHEME}{self.remote}/{name}", target, None, "file")
                fetched += 1
        return fetched

    def push(self, written: Path) -> None:
        """Copy a new checkpoint and its sidecar; delete those pruned locally."""
        for path in (written, written.with_name(written.name + ".sha256")):
            _upload_file(self.filesystem, path, f"{self.remote}/{path.name}")
        for name in self._remote_names() - {p.name for p in self.local.iterdir()}:
            self.filesystem.delete_file(f"{self.remote}/{name}")


def _upload_file(filesystem: Any, path: Path, target: str) -> None:
    with path.open("rb") as source, filesystem.open_output_stream(target) as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)


def upload_package(config: RunConfig, package_dir: Path, digest: str) -> str:
    """The package under ``<package_uri>/sha256/<digest>/`` (unless there); its URI."""
    from pyarrow import fs

    assert config.package_uri is not None
    filesystem_ = filesystem(config.object_store)
    base = f"{_path(config.package_uri)}/sha256/{digest.removeprefix('sha256:')}"
    files = sorted(p for p in package_dir.rglob("*") if p.is_file())
    marker = f"{base}/metadata.json"  # written last: its presence means the rest is there
    if filesystem_.get_file_info(marker).type != fs.FileType.File:
        for path in sorted(files, key=lambda p: p.name == "metadata.json"):
            _upload_file(filesystem_, path, f"{base}/{path.relative_to(package_dir).as_posix()}")
    return f"{S3_SCHEME}{base}/"
