"""What the engine reads of a document, as typed protocols: one interface for every document.

The engine (graph checks, cost, policy, provider settings) reads documents through these
protocols and nothing else. A document reaches it as a read-only ``View``
(``reconciler.spec.facts``) whether it came from the spec cache or was validated in this
command, so a plan reads the same cold and warm; mypy checks the engine's reads against
the protocols, and the block at the end checks that the pydantic models meet them. Only
fields and the methods a kind lists in ``PLAIN_METHODS`` may appear here: a View answers
nothing else.

Nothing here imports pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol


class Dumpable(Protocol):
    """The JSON form of a model, as ``model_dump(mode="json", by_alias=True)`` gives it."""

    def model_dump(
        self, *, mode: str = ..., by_alias: bool = ..., include: set[str] | None = ...
    ) -> dict[str, Any]: ...


class MetadataRead(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...


# -- the Workspace ------------------------------------------------------------------------


class DefaultResourcesRead(Protocol):
    @property
    def cpu(self) -> Decimal: ...
    @property
    def memory(self) -> int: ...


class DefaultsRead(Protocol):
    @property
    def provider(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def resources(self) -> DefaultResourcesRead: ...


class PricingRead(Protocol):
    @property
    def currency(self) -> str: ...
    @property
    def cpu_hour(self) -> Decimal: ...
    @property
    def memory_gib_hour(self) -> Decimal: ...
    @property
    def gpu_hour(self) -> Mapping[str, Decimal]: ...
    @property
    def default_gpu_hour(self) -> Decimal: ...


class PolicyRead(Protocol):
    @property
    def required_labels(self) -> Sequence[str]: ...


class PrometheusSettingsRead(Protocol):
    @property
    def pushgateway_url(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...


class ProvidersRead(Dumpable, Protocol):
    @property
    def prometheus(self) -> PrometheusSettingsRead: ...


class LineageRead(Protocol):
    @property
    def file(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def timeout_seconds(self) -> float: ...


class WorkspaceSpecRead(Dumpable, Protocol):
    @property
    def lineage(self) -> LineageRead | None: ...
    @property
    def defaults(self) -> DefaultsRead: ...
    @property
    def pricing(self) -> PricingRead: ...
    @property
    def policy(self) -> PolicyRead: ...
    @property
    def providers(self) -> ProvidersRead: ...


class WorkspaceRead(Dumpable, Protocol):
    @property
    def metadata(self) -> MetadataRead: ...
    @property
    def spec(self) -> WorkspaceSpecRead: ...


# -- TrainingJob, Quota, Budget: cost and policy -------------------------------------------


class ResourcesRead(Protocol):
    @property
    def cpu(self) -> Decimal | None: ...
    @property
    def memory(self) -> int | None: ...
    @property
    def gpus(self) -> int: ...
    @property
    def gpu_type(self) -> str | None: ...


class DistributedRead(Protocol):
    @property
    def workers(self) -> int: ...
    @property
    def nodes(self) -> int: ...


class TrainingJobSpecRead(Protocol):
    @property
    def resources(self) -> ResourcesRead: ...
    @property
    def distributed(self) -> DistributedRead: ...
    @property
    def max_duration(self) -> float: ...
    @property
    def quota(self) -> str | None: ...
    @property
    def features(self) -> str: ...
    def plain_secret_like_env(self) -> list[str]: ...
    def promotion_slo(self) -> str | None: ...
    def segment_uses(self) -> list[tuple[str, tuple[str | int, ...]]]: ...


class TrainingJobRead(Protocol):
    @property
    def metadata(self) -> MetadataRead: ...
    @property
    def spec(self) -> TrainingJobSpecRead: ...


class QuotaSpecRead(Protocol):
    @property
    def gpus(self) -> int | None: ...
    @property
    def gpu_types(self) -> Sequence[str] | None: ...
    @property
    def cpu(self) -> Decimal | None: ...
    @property
    def memory(self) -> int | None: ...


class QuotaRead(Protocol):
    @property
    def metadata(self) -> MetadataRead: ...
    @property
    def spec(self) -> QuotaSpecRead: ...


class BudgetScopeRead(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...


class BudgetSpecRead(Protocol):
    @property
    def amount(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def scope(self) -> BudgetScopeRead: ...
    @property
    def thresholds(self) -> Sequence[float]: ...
    @property
    def enforce(self) -> bool: ...


class BudgetRead(Protocol):
    @property
    def metadata(self) -> MetadataRead: ...
    @property
    def spec(self) -> BudgetSpecRead: ...


# -- Dataset, FeatureSet: column checks ------------------------------------------------------


class DatasetSpecRead(Protocol):
    def column_names(self) -> list[str]: ...


class DatasetRead(Protocol):
    @property
    def spec(self) -> DatasetSpecRead: ...


class FeatureSetSpecRead(Protocol):
    @property
    def dataset(self) -> str: ...
    @property
    def segments(self) -> Sequence[str]: ...
    def column_uses(self) -> list[tuple[str, tuple[str | int, ...]]]: ...


class FeatureSetRead(Protocol):
    @property
    def spec(self) -> FeatureSetSpecRead: ...


if TYPE_CHECKING:  # mypy checks that every model meets the protocol the engine reads it by
    from reconciler.kinds.data import Dataset, FeatureSet
    from reconciler.kinds.platform import Budget, Quota
    from reconciler.kinds.training import TrainingJob
    from reconciler.kinds.workspace import Workspace

    def _models_meet_their_protocols(
        workspace: Workspace,
        job: TrainingJob,
        quota: Quota,
        budget: Budget,
        dataset: Dataset,
        features: FeatureSet,
    ) -> None:
        _workspace: WorkspaceRead = workspace
        _job: TrainingJobRead = job
        _quota: QuotaRead = quota
        _budget: BudgetRead = budget
        _dataset: DatasetRead = dataset
        _features: FeatureSetRead = features
