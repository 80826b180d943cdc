"""JSON Schemas generated from the spec models, for editors and for docs.

``specs/schema/`` holds one file per kind plus ``pipeform.schema.json``, which accepts
any document; a test fails when the checked-in files differ from what this generates.
Regenerate with ``pipeform schema --write specs/schema`` (or ``make generate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from reconciler.kinds import KINDS, Document
from reconciler.kinds.quantities import UNIT_KEY, format_default

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://pipeform.dev/schema/v1/"
ANY_FILE = "pipeform.schema.json"


def file_name(kind: str) -> str:
    return f"{kind.lower()}.schema.json"


def find_kind(name: str) -> type[Document] | None:
    for kind, model in KINDS.items():
        if kind.lower() == name.lower():
            return model
    return None


def _units_in_user_terms(node: Any) -> Any:
    """Write unit defaults as users do (6h, 2Gi) and drop the unit markers."""
    if isinstance(node, list):
        return [_units_in_user_terms(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _units_in_user_terms(value) for key, value in node.items() if key != UNIT_KEY}
    unit = node.get(UNIT_KEY)
    if unit and "default" in node:
        out["default"] = format_default(unit, node["default"])
    return out


def kind_schema(model: type[Document]) -> dict[str, Any]:
    body = _units_in_user_terms(model.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": BASE_ID + file_name(model.KIND),
        **body,
        "title": model.KIND,
    }


def document_schema() -> dict[str, Any]:
    # A discriminated union of every kind, built at run time from the registry.
    union: Any = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
    adapter: TypeAdapter[Document] = TypeAdapter(union)
    body = _units_in_user_terms(adapter.json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": BASE_ID + ANY_FILE,
        "title": "pipeform document",
        "description": "Any pipeform/v1 document; the kind field selects its schema.",
        **body,
    }


def rendered() -> dict[str, str]:
    """File name -> file text, for every schema file."""
    files = {file_name(kind): kind_schema(model) for kind, model in KINDS.items()}
    files[ANY_FILE] = document_schema()
    return {name: json.dumps(body, indent=2) + "\n" for name, body in files.items()}


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
