"""Data kinds: Dataset (a validated, content-addressed snapshot) and FeatureSet."""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from reconciler.kinds.common import (
    Document,
    FieldError,
    Name,
    ResourceSpec,
    SpecModel,
    empty_list,
    omitted_when,
)
from reconciler.kinds.patterns import check_pattern
from reconciler.kinds.reference import Reference
from reconciler.kinds.sources import CsvOptions as CsvOptions  # re-exported: readers use it
from reconciler.kinds.sources import DataFormat as DataFormat
from reconciler.kinds.sources import Source as Source
from reconciler.kinds.units import Duration

Scalar = int | float | str | bool


class ColumnType(StrEnum):
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    DATE = "date"


class Column(SpecModel):
    name: str = Field(min_length=1, description="Column name as in the source. Required.")
    type: ColumnType = Field(description="int, float, string, bool, timestamp or date. Required.")
    nullable: bool = Field(True, description="Whether missing values are allowed. Default: true.")
    unique: bool = Field(False, description="Whether every value must be distinct. Default: false.")
    min: float | None = Field(
        None, description="Smallest allowed value (numbers). Default: no bound."
    )
    max: float | None = Field(
        None, description="Largest allowed value (numbers). Default: no bound."
    )
    allowed: list[Scalar] | None = Field(None, description="The only values allowed. Default: any.")
    regex: str | None = Field(
        None, description="A pattern every string value must match in full. Default: none."
    )
    description: str = Field("", description="What the column means. Default: empty.")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        return None if pattern is None else check_pattern(pattern)

    @model_validator(mode="after")
    def _bounds(self) -> Column:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Freshness(SpecModel):
    column: str = Field(description="A timestamp column whose newest value is checked. Required.")
    max_age: Duration = Field(description="How old the newest value may be, such as 24h. Required.")


class Drift(SpecModel):
    columns: list[str] | None = Field(
        None,
        description="Columns checked against the previous snapshot. Default: every column in schema.",
    )
    max_psi: float = Field(
        0.2,
        gt=0,
        description="Largest population stability index allowed per column. Default: 0.2.",
    )
    bins: int = Field(
        10, ge=2, le=100, description="Histogram bins for numeric columns. Default: 10."
    )


class Validation(SpecModel):
    min_rows: int | None = Field(None, ge=0, description="Fewest rows allowed. Default: no bound.")
    max_rows: int | None = Field(None, ge=0, description="Most rows allowed. Default: no bound.")
    max_null_fraction: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="Per column (or '*' for every column), the largest fraction of missing values. Default: none.",
    )
    freshness: Freshness | None = Field(
        None, description="How recent the data must be. Default: not checked."
    )
    drift: Drift | None = Field(
        None, description="Distribution drift against the previous snapshot. Default: not checked."
    )

    @model_validator(mode="after")
    def _rows(self) -> Validation:
        if (
            self.min_rows is not None
            and self.max_rows is not None
            and self.min_rows > self.max_rows
        ):
            raise ValueError(f"minRows ({self.min_rows}) is greater than maxRows ({self.max_rows})")
        return self


class DatasetSpec(ResourceSpec):
    PLAIN_METHODS: ClassVar[tuple[str, ...]] = ("column_names",)

    source: Source = Field(description="Where the data comes from and its format. Required.")
    schema_: list[Column] = Field(
        default_factory=empty_list,
        alias="schema",
        description="The declared columns and their checks. Default: none (no column checks).",
    )
    strict_columns: bool = Field(
        False,
        description="Refuse source columns that the schema does not declare. Default: false "
        "(undeclared columns are kept, unchecked).",
    )
    validation: Validation = Field(
        default_factory=Validation, description="Rules checked on every snapshot. Default: none."
    )

    @field_validator("schema_")
    @classmethod
    def _unique_columns(cls, columns: list[Column]) -> list[Column]:
        seen: set[str] = set()
        for i, column in enumerate(columns):
            if column.name in seen:
                raise FieldError(f"column {column.name!r} is declared twice", i, "name")
            seen.add(column.name)
        return columns

    def column_names(self) -> list[str]:
        return [c.name for c in self.schema_]


class Dataset(Document):
    KIND = "Dataset"
    KEEP_VIEW = True
    kind: Literal["Dataset"] = Field(description="Dataset. Required.")
    spec: DatasetSpec = Field(
        description="The dataset's source, schema and validation rules. Required."
    )


# --- FeatureSet ---------------------------------------------------------------------


class Passthrough(SpecModel):
    type: Literal["passthrough"] = Field(description="passthrough selects this variant. Required.")


class Standardize(SpecModel):
    type: Literal["standardize"] = Field(description="standardize selects this variant. Required.")


class MinMax(SpecModel):
    type: Literal["minmax"] = Field(description="minmax selects this variant. Required.")


class Log1p(SpecModel):
    type: Literal["log1p"] = Field(description="log1p selects this variant. Required.")


class Clip(SpecModel):
    type: Literal["clip"] = Field(description="clip selects this variant. Required.")
    min: float | None = Field(None, description="Lower bound. Default: none.")
    max: float | None = Field(None, description="Upper bound. Default: none.")

    @model_validator(mode="after")
    def _bounds(self) -> Clip:
        if self.min is None and self.max is None:
            raise ValueError("clip needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Bucketize(SpecModel):
    type: Literal["bucketize"] = Field(description="bucketize selects this variant. Required.")
    boundaries: list[float] = Field(min_length=1, description="Increasing bucket edges. Required.")

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, edges: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("boundaries must be strictly increasing")
        return edges


class OneHot(SpecModel):
    type: Literal["onehot"] = Field(description="onehot selects this variant. Required.")
    vocabulary: list[Scalar] | None = Field(
        None,
        description="The categories; others go to the 'other' bucket. Default: learned from the training split.",
    )
    max_categories: int = Field(
        50, ge=1, description="Most categories learned when no vocabulary is given. Default: 50."
    )
    other: bool = Field(True, description="Add an 'other' bucket for unseen values. Default: true.")


class HashBuckets(SpecModel):
    type: Literal["hash"] = Field(description="hash selects this variant. Required.")
    buckets: int = Field(ge=2, le=1_000_000, description="Number of hash buckets. Required.")


class FillNa(SpecModel):
    type: Literal["fillna"] = Field(description="fillna selects this variant. Required.")
    value: Scalar | None = Field(
        None, description="A constant to fill with. Default: none (use strategy)."
    )
    strategy: Literal["mean", "median", "mode"] | None = Field(
        None, description="A statistic fitted on the training split. Default: none (use value)."
    )

    @model_validator(mode="after")
    def _one(self) -> FillNa:
        if (self.value is None) == (self.strategy is None):
            raise ValueError("fillna needs exactly one of value or strategy")
        return self


class DatetimeParts(SpecModel):
    type: Literal["datetime"] = Field(description="datetime selects this variant. Required.")
    parts: list[Literal["year", "month", "day", "dayofweek", "dayofyear", "hour", "minute"]] = (
        Field(min_length=1, description="Which parts to extract. Required.")
    )


Transform = Annotated[
    Passthrough
    | Standardize
    | MinMax
    | Log1p
    | Clip
    | Bucketize
    | OneHot
    | HashBuckets
    | FillNa
    | DatetimeParts,
    Field(discriminator="type"),
]


def _transform_shorthand(value: Any) -> Any:
    """Allow ``standardize`` for ``{type: standardize}``."""
    return {"type": value} if isinstance(value, str) else value


class Feature(SpecModel):
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The feature's name in the table. Required.",
    )
    column: str | None = Field(
        None, description="The dataset column it is computed from. Default: the feature's name."
    )
    transforms: list[
        Annotated[
            Transform,
            BeforeValidator(
                _transform_shorthand,
                json_schema_input_type=Literal["passthrough", "standardize", "minmax", "log1p"]
                | Transform,
            ),
        ]
    ] = Field(
        default_factory=empty_list,
        description="Transforms applied in order; a bare name such as standardize is short for "
        "{type: standardize}. Default: none (passthrough).",
    )

    @property
    def source_column(self) -> str:
        return self.column or self.name


class Label(SpecModel):
    column: str = Field(description="The dataset column to predict. Required.")


class RandomSplit(SpecModel):
    type: Literal["random"] = Field(description="random selects this variant. Required.")
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of rows for validation. Default: 0.2."
    )
    seed: int = Field(42, description="Seed of the shuffle. Default: 42.")


class TemporalSplit(SpecModel):
    type: Literal["temporal"] = Field(description="temporal selects this variant. Required.")
    column: str = Field(description="The time (or period) column. Required.")
    validation_from: int | float | str = Field(
        description="Rows whose column is at or after this value are validation rows; "
        "the rest train. Required."
    )


Split = Annotated[RandomSplit | TemporalSplit, Field(discriminator="type")]


class RowNumberEntity(SpecModel):
    row_number: Literal[True] = Field(
        description="true: every row is its own entity, keyed by its position in the Dataset "
        "snapshot (0, 1, 2, ...), for a table with no key column. Required."
    )
    name: str = Field(
        "row_number",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The key column's name in the feature tables. Default: row_number.",
    )


def _entity_shape(value: Any) -> str | None:
    if isinstance(value, dict | RowNumberEntity):
        return "row-number key"
    return "key columns" if isinstance(value, list) else None


#: entity: [columns] or {rowNumber: true}, told apart by the written shape, so that a
#: mistake is one error about the shape written (the tags are not keys of either shape)
EntityKey = Annotated[
    Annotated[list[str], Tag("key columns")] | Annotated[RowNumberEntity, Tag("row-number key")],
    Discriminator(
        _entity_shape,
        custom_error_type="entity_shape",
        custom_error_message="Input should be a column name, a list of them, or {rowNumber: true}",
    ),
]


class FeatureSetSpec(ResourceSpec):
    PLAIN_METHODS: ClassVar[tuple[str, ...]] = ("column_uses",)

    dataset: Name = Field(description="The Dataset whose newest snapshot is the input. Required.")
    entity: EntityKey = Field(
        description="Entity key column(s): a column name or a list of them, whose values "
        "together are unique per row; or {rowNumber: true} for a table without such a key "
        "(each row is keyed by its position). Required.",
    )
    label: Label = Field(description="The label column. Required.")
    features: list[Feature] = Field(min_length=1, description="The features. Required.")
    split: Split = Field(
        default_factory=lambda: RandomSplit(type="random"),
        description="How rows divide into train and validation. Default: random, 20% validation, seed 42.",
    )
    segments: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=empty_list,
        description="Dataset columns carried into the feature tables beside the features, "
        "as they are, but never fed to the model: what a TrainingJob's evaluation slices "
        "metrics by and checks fairness over (such as site or female). Default: none.",
        exclude_if=omitted_when([]),
    )

    @field_validator("entity", mode="before")
    @classmethod
    def _entity_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("entity")
    @classmethod
    def _some_key(cls, value: list[str] | RowNumberEntity) -> list[str] | RowNumberEntity:
        if value == []:
            raise ValueError(
                "names no column; name the key column(s), or write {rowNumber: true} for a "
                "table without a key"
            )
        return value

    @field_validator("features")
    @classmethod
    def _unique(cls, features: list[Feature]) -> list[Feature]:
        seen: set[str] = set()
        for i, feature in enumerate(features):
            if feature.name in seen:
                raise FieldError(f"feature {feature.name!r} is declared twice", i, "name")
            seen.add(feature.name)
        return features

    @field_validator("segments")
    @classmethod
    def _distinct_segments(cls, segments: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, name in enumerate(segments):
            if name in seen:
                raise FieldError(f"segment {name!r} is listed twice", i)
            seen.add(name)
        return segments

    def references(self) -> list[Reference]:
        return [Reference("Dataset", self.dataset, ("dataset",))]

    def column_uses(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """Every dataset column this spec reads, with where it is written (under spec)."""
        uses: list[tuple[str, tuple[str | int, ...]]] = []
        if isinstance(self.entity, list):  # a row-number key reads no column
            uses += [(col, ("entity", i)) for i, col in enumerate(self.entity)]
        uses.append((self.label.column, ("label", "column")))
        for i, feature in enumerate(self.features):
            where = ("features", i, "column" if feature.column else "name")
            uses.append((feature.source_column, where))
        if isinstance(self.split, TemporalSplit):
            uses.append((self.split.column, ("split", "column")))
        uses += [(column, ("segments", i)) for i, column in enumerate(self.segments)]
        return uses


class FeatureSet(Document):
    KIND = "FeatureSet"
    KEEP_VIEW = True
    kind: Literal["FeatureSet"] = Field(description="FeatureSet. Required.")
    spec: FeatureSetSpec = Field(description="The entity, label, features and split. Required.")
