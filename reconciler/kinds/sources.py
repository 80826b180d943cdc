"""Where a Dataset's rows come from: the source URI, its format and the CSV reading options."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from reconciler.kinds.common import SpecModel


class DataFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


def _one_character(value: Any) -> Any:
    """A delimiter or quote is one character; '\\t' (backslash, t) is a tab meant."""
    if value == "\\t":
        raise ValueError(
            "'\\t' is two characters here, a backslash and a t (as YAML reads it plain or in "
            'single quotes); write a tab as "\\t" in double quotes'
        )
    if isinstance(value, str) and len(value) != 1:
        raise ValueError(f"must be one character, not {value!r}")
    return value


def _unset(value: Any) -> bool:
    return value is None


class CsvOptions(SpecModel):
    # Fields added after the first release are left out of the spec's JSON while unset
    # (exclude_if), so the specs and snapshots made before them keep their hashes.
    delimiter: str = Field(
        ",",
        min_length=1,
        max_length=1,
        description='Field separator, one character; write a tab as "\\t" (in double quotes). '
        "Default: ','.",
    )
    header: bool = Field(
        True, description="Whether the first row names the columns. Default: true."
    )
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NA", "NaN", "null"],
        description="Cell values read as missing. Default: '', NA, NaN, null.",
    )
    quote: str | None = Field(
        None,
        min_length=1,
        max_length=1,
        exclude_if=_unset,
        description="The character that quotes a value holding the delimiter or a newline. "
        "Default: '\"'.",
    )
    header_strip: str | None = Field(
        None,
        min_length=1,
        exclude_if=_unset,
        description='Characters taken off both ends of every header name, such as "\'" for '
        "a header written 'age','income' (common in exported survey data). Default: none.",
    )
    rename: dict[str, Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        exclude_if=_unset,
        description="Header names to change, {name in the file (after headerStrip): column "
        "name}. Default: none.",
    )

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        return _one_character(value)

    @field_validator("quote", mode="before")
    @classmethod
    def _quote(cls, value: Any) -> Any:
        return _one_character(value)

    def column_name(self, written: str) -> str:
        """A header name as the file writes it -> the column's name (headerStrip, rename)."""
        name = written.strip(self.header_strip) if self.header_strip else written
        return (self.rename or {}).get(name, name)


class Source(SpecModel):
    uri: str = Field(
        description="Where the data lives: file://path (relative to the spec tree, or absolute "
        "when the Workspace allows it) or s3://bucket/key. Required.",
    )
    format: DataFormat | None = Field(
        None, description="csv, parquet or jsonl. Default: from the file extension."
    )
    csv: CsvOptions = Field(
        default_factory=CsvOptions,
        description="CSV reading options. Default: comma-separated with a header.",
    )

    @field_validator("uri")
    @classmethod
    def _scheme(cls, uri: str) -> str:
        if not re.match(r"^(file|s3)://.+", uri):
            raise ValueError(
                f"{uri!r} has no supported scheme; write file://data/table.csv or s3://bucket/key"
            )
        return uri

    @model_validator(mode="after")
    def _known_format(self) -> Source:
        if self.format is None and self.inferred_format() is None:
            raise ValueError(
                f"cannot tell the format of {self.uri!r} from its extension; set format: csv, parquet or jsonl"
            )
        return self

    def inferred_format(self) -> DataFormat | None:
        if self.format is not None:
            return DataFormat(self.format)
        suffixes = {
            ".csv": "csv",
            ".parquet": "parquet",
            ".pq": "parquet",
            ".jsonl": "jsonl",
            ".ndjson": "jsonl",
        }
        for suffix, fmt in suffixes.items():
            if self.uri.lower().endswith(suffix):
                return DataFormat(fmt)
        return None


__all__ = ["CsvOptions", "DataFormat", "Source"]
