"""The MLflow Model Registry behind the ``Registry`` interface (MLflow >= 2.3, aliases).

``register`` logs the package as the artifacts of an MLflow run in the experiment
``pipeform`` (tagged ``pipeform.run_id``; lineage config as params, lineage metrics as
metrics, the whole lineage as ``lineage.json``), then creates a model version from
``runs:/<mlflow run>/package`` whose tags carry the caller's tags, the run id, the
package digest and the lineage (``pipeform.lineage`` as JSON plus short flattened
``pipeform.lineage.*`` tags for the UI). It is idempotent by run id: a version tagged with
the run id is returned as is, and a finished MLflow run holding the same package is
reused rather than uploaded again. mlflow is imported only here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trainer.registry import ModelVersion, Registration, Registry
from trainer.registry.common import (
    RegistryError,
    RegistryLookupError,
    check_alias,
    check_model_name,
    package_digest,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion
    from mlflow.entities.model_registry import RegisteredModel
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT = "pipeform"
RUN_ID_TAG = "pipeform.run_id"
SHA256_TAG = "pipeform.package_sha256"
LINEAGE_TAG = "pipeform.lineage"
_INTERNAL = (RUN_ID_TAG, SHA256_TAG, LINEAGE_TAG)
_BULKY = ("config", "training", "metrics", "export")
_SHORT_TAGS = 40  # flattened lineage tags per version, for the UI
_SHORT_VALUE = 250
_MAX_PARAM_VALUE = 6000
_MAX_LINEAGE_TAG = 100_000
_BATCH = 100
_T = TypeVar("_T")
_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")
_UNREACHABLE = ("Max retries exceeded", "Failed to establish a new connection")


def shown_uri(text: str) -> str:
    """The text with the user:password part of every URL in it replaced by ``***``."""
    return _USERINFO.sub("***@", text)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts -> {"a.b": "value"}; lists and other values as compact JSON/str."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, str):
        return {prefix: value}
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MlflowRegistry(Registry):
    """The ``Registry`` backed by an MLflow tracking server's Model Registry."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client_instance: MlflowClient | None = None

    @property
    def _client(self) -> MlflowClient:
        if self._client_instance is None:
            from mlflow.tracking import MlflowClient

            self._client_instance = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client_instance

    def _call(self, what: str, action: Callable[[], _T]) -> _T:
        """Run a client call; MLflow and network errors become one RegistryError."""
        from mlflow.exceptions import MlflowException

        try:
            return action()
        except MlflowException as error:
            message = error.message.splitlines()[0] if error.message else str(error.error_code)
            if any(marker in message for marker in _UNREACHABLE):
                message += "; is the server running? check the Workspace's registry trackingUri"
            raise RegistryError(
                shown_uri(f"MLflow registry at {self.tracking_uri}: {what} failed: {message}")
            ) from error
        except OSError as error:  # a connection error that MLflow did not wrap
            raise RegistryError(
                shown_uri(
                    f"MLflow registry at {self.tracking_uri} is unreachable while trying to "
                    f"{what}: {error}; check the Workspace's registry trackingUri"
                )
            ) from error

    # -- reading -------------------------------------------------------------------------

    def _to_version(
        self, found: MlflowModelVersion, aliases: dict[int, tuple[str, ...]]
    ) -> ModelVersion:
        tags = dict(found.tags or {})
        lineage_text = tags.get(LINEAGE_TAG, "{}")
        try:
            lineage = json.loads(lineage_text)
        except ValueError:
            lineage = {"truncated": lineage_text}
        return ModelVersion(
            model=found.name,
            version=int(found.version),
            run_id=tags.get(RUN_ID_TAG, ""),
            uri=f"models:/{found.name}/{found.version}",
            package_sha256=tags.get(SHA256_TAG, ""),
            created_at=datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
            tags={
                key: value
                for key, value in sorted(tags.items())
                if key not in _INTERNAL and not key.startswith(LINEAGE_TAG + ".")
            },
            aliases=aliases.get(int(found.version), ()),
            lineage=lineage if isinstance(lineage, dict) else {"value": lineage},
        )

    def _search(self, filter_string: str) -> list[MlflowModelVersion]:
        found: list[MlflowModelVersion] = []
        token: str | None = None
        while True:
            page = self._call(
                "search model versions",
                partial(
                    self._client.search_model_versions,
                    filter_string,
                    max_results=1000,
                    page_token=token,
                ),
            )
            found.extend(page)
            token = page.token
            if not token:
                return found

    def _registered_model(self, model: str) -> RegisteredModel | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._call("read model", lambda: self._client.get_registered_model(model))
        except RegistryError as error:
            cause = error.__cause__
            if isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _aliases(self, model: str) -> dict[int, tuple[str, ...]]:
        """version -> its aliases (search results do not carry them; the model does)."""
        check_model_name(model)
        registered = self._registered_model(model)
        if registered is None:
            models = self._call(
                "list models", lambda: self._client.search_registered_models(max_results=50)
            )
            known = ", ".join(sorted(m.name for m in models)) or "none yet"
            raise RegistryLookupError(
                f"model {model!r} is not registered in MLflow at {shown_uri(self.tracking_uri)} "
                f"(registered models: {known})"
            )
        by_version: dict[int, list[str]] = {}
        for alias, number in (registered.aliases or {}).items():
            by_version.setdefault(int(number), []).append(alias)
        return {number: tuple(sorted(names)) for number, names in by_version.items()}

    def _raw_versions(
        self, model: str
    ) -> tuple[list[MlflowModelVersion], dict[int, tuple[str, ...]]]:
        aliases = self._aliases(model)
        found = sorted(self._search(f"name = '{model}'"), key=lambda one: int(one.version))
        return found, aliases

    def get(self, model: str, version: int | None = None, alias: str | None = None) -> ModelVersion:
        """A version by number, by alias, or the latest when neither is given."""
        if version is not None and alias is not None:
            raise ValueError("give a version or an alias, not both")
        found, aliases = self._raw_versions(model)
        if not found:
            raise RegistryLookupError(f"model {model!r} has no versions yet")
        if alias is not None:
            named = [number for number, names in aliases.items() if alias in names]
            if not named:
                pairs = sorted(f"{a} -> {n}" for n, names in aliases.items() for a in names)
                raise RegistryLookupError(
                    f"model {model!r} has no alias {alias!r} (aliases: {', '.join(pairs) or 'none'})"
                )
            version = named[0]
        if version is None:
            return self._to_version(found[-1], aliases)
        for candidate in found:
            if int(candidate.version) == version:
                return self._to_version(candidate, aliases)
        numbers = ", ".join(str(v.version) for v in found)
        raise RegistryLookupError(f"model {model!r} has no version {version} (versions: {numbers})")

    def versions(self, model: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        found, aliases = self._raw_versions(model)
        return [self._to_version(one, aliases) for one in found]

    # -- writing -------------------------------------------------------------------------

    def set_alias(self, model: str, alias: str, version: int) -> None:
        """Point the alias at a version (MLflow moves it from the version it named)."""
        check_alias(alias)
        self.get(model, version=version)  # a clear error for an unknown model or version
        self._call(
            f"set alias {alias!r}",
            lambda: self._client.set_registered_model_alias(model, alias, str(version)),
        )

    def package_path(self, version: ModelVersion, scratch: Path) -> Path:
        """The version's package, downloaded from the server into scratch.

        The version's artifact location is asked of this client first: a ``models:/`` URI
        would be resolved against the process's default registry (``MLFLOW_REGISTRY_URI``
        or ``./mlruns``), not this server, whatever ``tracking_uri`` says."""
        import mlflow.artifacts

        uri = f"models:/{version.model}/{version.version}"
        location = self._call(
            f"find {uri}",
            lambda: self._client.get_model_version_download_uri(
                version.model, str(version.version)
            ),
        )
        downloaded = self._call(
            f"download {uri}",
            lambda: mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(scratch), tracking_uri=self.tracking_uri
            ),
        )
        return Path(downloaded)

    def _register(self, request: Registration) -> ModelVersion:
        model, run_id = request.model, request.run_id
        existing = self._version_of_run(model, run_id)
        if existing is not None:
            return self._to_version(existing, self._aliases(model))
        digest = package_digest(request.package_dir)
        mlflow_run = self._finished_run(run_id, digest) or self._log_run(
            request.package_dir, run_id, digest, request.lineage
        )
        self._ensure_model(model)
        version_tags = {
            **{k: str(v) for k, v in request.tags.items()},
            **self._lineage_tags(request.lineage),
        }
        version_tags.update({RUN_ID_TAG: run_id, SHA256_TAG: digest})
        created = self._call(
            "create a model version",
            lambda: self._client.create_model_version(
                model, f"runs:/{mlflow_run}/package", run_id=mlflow_run, tags=version_tags
            ),
        )
        return self._to_version(created, {})

    def _version_of_run(self, model: str, run_id: str) -> MlflowModelVersion | None:
        found = [
            candidate
            for candidate in self._search(f"tags.`{RUN_ID_TAG}` = '{run_id}'")
            if candidate.name == model
        ]
        return min(found, key=lambda candidate: int(candidate.version)) if found else None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client
        experiment = self._call(
            "find experiment", lambda: client.get_experiment_by_name(EXPERIMENT)
        )
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(
                self._call("create experiment", lambda: client.create_experiment(EXPERIMENT))
            )
        except RegistryError as error:  # tolerate a concurrent create
            cause = error.__cause__
            if not (
                isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_ALREADY_EXISTS"
            ):
                raise
        experiment = self._call(
            "find experiment", lambda: client.get_experiment_by_name(EXPERIMENT)
        )
        if experiment is None:
            raise RegistryError(f"MLflow experiment {EXPERIMENT!r} vanished while being created")
        return str(experiment.experiment_id)

    def _finished_run(self, run_id: str, digest: str) -> str | None:
        """An MLflow run of an earlier attempt that uploaded this very package."""
        experiment = self._experiment_id()
        runs = self._call(
            "search runs",
            lambda: self._client.search_runs(
                [experiment],
                filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}' and tags.`{SHA256_TAG}` = '{digest}' "
                "and attributes.status = 'FINISHED'",
                max_results=1,
            ),
        )
        return str(runs[0].info.run_id) if runs else None

    def _log_run(self, package_dir: Path, run_id: str, digest: str, lineage: dict[str, Any]) -> str:
        """A new MLflow run holding the package; tagged with its digest once complete."""
        client = self._client
        experiment = self._experiment_id()
        run = self._call(
            "create a run",
            lambda: client.create_run(experiment, tags={RUN_ID_TAG: run_id}, run_name=run_id),
        )
        mlflow_run = str(run.info.run_id)
        try:
            self._log_lineage(mlflow_run, lineage)
            self._call(
                "upload the package",
                lambda: client.log_artifacts(mlflow_run, str(package_dir), "package"),
            )
            self._call("tag the run", lambda: client.set_tag(mlflow_run, SHA256_TAG, digest))
        except BaseException:
            with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
                client.set_terminated(mlflow_run, "FAILED")
            raise
        with contextlib.redirect_stdout(io.StringIO()) as printed:  # MLflow prints the run URL
            self._call("finish the run", lambda: client.set_terminated(mlflow_run, "FINISHED"))
        log.info("%s", "; ".join(printed.getvalue().split("\n")).strip("; "))
        return mlflow_run

    def _log_lineage(self, mlflow_run: str, lineage: dict[str, Any]) -> None:
        """lineage["config"] as params, lineage["metrics"] as metrics, all as lineage.json."""
        from mlflow.entities import Metric, Param

        client = self._client
        config = lineage.get("config")
        params = [
            Param(key[:250], value[:_MAX_PARAM_VALUE])
            for key, value in sorted(flatten(config if isinstance(config, dict) else {}).items())
        ]
        now = int(datetime.now(UTC).timestamp() * 1000)
        metrics = lineage.get("metrics")
        values = [
            Metric(str(key)[:250], float(value), now, 0)
            for key, value in sorted((metrics if isinstance(metrics, dict) else {}).items())
            if isinstance(value, int | float) and math.isfinite(float(value))
        ]
        for chunk in _chunks(params, _BATCH):
            self._call("log params", partial(client.log_batch, mlflow_run, params=chunk))
        for batch in _chunks(values, _BATCH):
            self._call("log metrics", partial(client.log_batch, mlflow_run, metrics=batch))
        with tempfile.TemporaryDirectory() as scratch:
            lineage_file = Path(scratch) / "lineage.json"
            lineage_file.write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
            self._call(
                "upload lineage", partial(client.log_artifact, mlflow_run, str(lineage_file))
            )

    def _ensure_model(self, model: str) -> None:
        from mlflow.exceptions import MlflowException

        if self._registered_model(model) is not None:
            return
        try:
            self._call("create the model", lambda: self._client.create_registered_model(model))
        except RegistryError as error:  # tolerate a concurrent create
            cause = error.__cause__
            if not (
                isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_ALREADY_EXISTS"
            ):
                raise

    @staticmethod
    def _lineage_tags(lineage: dict[str, Any]) -> dict[str, str]:
        """The whole lineage as JSON, plus its short provenance values one tag each.

        The trainer's package metadata keeps provenance under ``lineage`` (address, spec
        hash, FeatureSet, dataset snapshots...) next to bulky ``config`` and ``training``
        sections; only the provenance becomes ``pipeform.lineage.<key>`` tags.
        """
        tags: dict[str, str] = {}
        text = json.dumps(lineage, sort_keys=True, default=str)
        if len(text) <= _MAX_LINEAGE_TAG:
            tags[LINEAGE_TAG] = text
        nested = lineage.get("lineage")
        source = nested if isinstance(nested, dict) else lineage
        provenance = {k: v for k, v in source.items() if k not in _BULKY and v is not None}
        short = [
            (key, value)
            for key, value in sorted(flatten(provenance).items())
            if key and len(value) <= _SHORT_VALUE
        ]
        for key, value in short[:_SHORT_TAGS]:
            tags[f"{LINEAGE_TAG}.{key}"[:250]] = value
        return tags
