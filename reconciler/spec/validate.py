"""One document against its kind's model: pydantic's errors as diagnostics.

Each problem gets file:line:column, the resource address, and a message in the spec's
terms (aliases, YAML types), with a "did you mean" for misspelt fields and values.
pydantic is imported only here, and only when a document must be validated.
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import TYPE_CHECKING, Any

from reconciler.diagnostics import Diagnostic, error, suggestion
from reconciler.kinds import API_VERSION, KINDS
from reconciler.spec.source import DataPath, RawDocument

if TYPE_CHECKING:
    from pydantic import BaseModel

    from reconciler.kinds import Document


def format_path(path: DataPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> DataPath:
    """pydantic's loc with union-member tags dropped, so it follows the written data."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if _contains(node, part):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 or not isinstance(node, dict | list):
            path.append(part)
            node = None
    return tuple(path)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def union_members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_strip(m) for m in typing.get_args(tp) if m is not type(None)]
    return [tp]


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def known_fields(tp: Any, path: DataPath, data: Any) -> list[str]:
    """The field names a model accepts at path, following the written data through unions."""
    from pydantic import BaseModel

    out: list[str] = []
    for member in union_members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            type_field = member.model_fields.get("type")
            if (
                type_field is not None
                and isinstance(data, dict)
                and "type" in data
                and data["type"] not in typing.get_args(type_field.annotation)
            ):
                continue  # another member of a tagged union
            if not path:
                out.extend(_field_names(member))
                continue
            for name, info in member.model_fields.items():
                if path[0] in (info.alias, name):
                    sub = data.get(path[0]) if isinstance(data, dict) else None
                    out.extend(known_fields(info.annotation, path[1:], sub))
        elif path and typing.get_origin(member) in (list, dict):
            inner = typing.get_args(member)[-1]
            out.extend(known_fields(inner, path[1:], _child(data, path[0])))
    return out


def _contains(data: Any, key: Any) -> bool:
    if isinstance(data, dict):
        return key in data
    return isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)


def _child(data: Any, key: Any) -> Any:
    return data[key] if _contains(data, key) else None


def _shown(value: Any) -> str:
    """A value as the user wrote it in YAML terms, short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _pattern_hints() -> dict[str, str]:
    """How to fix a value that does not match a pattern, by pattern (for messages only)."""
    from reconciler.kinds.common import ADDRESS, DNS_LABEL, ENV_NAME

    return {
        DNS_LABEL: "use lower-case letters, digits and '-', starting and ending with a letter or digit, such as my-name",
        ADDRESS: "write Kind/name, such as Secret/db-password",
        ENV_NAME: "use letters, digits and '_', not starting with a digit",
        r"^[A-Z]{3}$": "use an ISO 4217 currency code such as USD or EUR",
    }


def _type_hint(kind: str, value: Any) -> str | None:
    """Why YAML may have read a value as another type than meant, and the fix."""
    if kind == "string_type" and isinstance(value, bool):
        return "put it in quotes: YAML reads unquoted yes, no, on, off, true and false as booleans"
    if kind == "string_type" and isinstance(value, int | float):
        return f'put it in quotes ("{value}") to make it text'
    if kind.startswith(("int_", "float_")) and isinstance(value, str):
        return "write a plain number, without quotes or units"
    if kind.startswith("bool_"):
        return "write true or false"
    if kind == "invalid_key":
        return "the keys here are field names: write text, not a number or another value"
    if kind == "finite_number":
        return "NaN and infinity cannot be compared or priced: write a finite number"
    if kind == "list_type":
        return "write a list: [a, b] or one '- item' per line"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write a mapping: {key: value} or one 'key: value' per indented line"
    return None


def _describe(err: Any, path: DataPath, model: type[Document], data: Any) -> tuple[str, str | None]:
    where = format_path(path)
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        known = known_fields(model, path[:-1], data)
        return f"{where} is not a known field", suggestion(str(path[-1]), known) or (
            f"known fields here: {', '.join(sorted(known))}" if known else "remove it"
        )
    if kind == "missing":
        return f"{where} is required", f"add {path[-1]}"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        tag = ctx.get("tag")
        return (
            f"{where}.{ctx.get('discriminator', 'type').strip(chr(39))}: {tag!r} is not a known type",
            suggestion(str(tag), tags) or f"use one of {', '.join(tags)}",
        )
    if kind == "missing_key":
        value = err.get("input")
        return f"{where} {err['msg']}", (
            "write exactly one of these keys"
            if isinstance(value, dict)
            else f"write a mapping with one of these keys, not {_shown(value)}"
        )
    if kind == "union_tag_not_found":
        return f"{where} needs a {ctx.get('discriminator', 'type')!s}".replace("'", ""), None
    message = str(err["msg"])
    value = err.get("input")
    hint = None
    if kind in (
        "value_error",
        "assertion_error",
    ):  # our own validators' words, already phrased for users
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif kind in ("literal_error", "enum"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"{_shown(value)} is not allowed; expected {ctx.get('expected', '')}"
        hint = suggestion(str(value), options)
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = f"{_shown(value)} is not in the expected form"
        hint = _pattern_hints().get(pattern, f"it must match the regular expression {pattern}")
    else:  # pydantic's own words: "Input should be greater than 0" and the like
        message = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", message)
        message = f"{message[:1].lower()}{message[1:]} (got {_shown(value)})"
        hint = _type_hint(kind, value)
    return f"{where}: {message}" if where else message, hint


def _check_header(raw: RawDocument) -> tuple[type[Document] | None, list[Diagnostic]]:
    data = raw.data
    if not isinstance(data, dict):
        return None, [
            error(
                f"a document must be a mapping with apiVersion, kind, metadata and spec, not {_shown(data)}",
                raw.start,
                hint="see specs/examples/quickstart for the shape",
            )
        ]
    problems = []
    version = data.get("apiVersion")
    if version is None and "kind" not in data and "groups" in data:
        return None, [
            error(
                "this is a Prometheus rule file, not a pipeform document",
                raw.start,
                hint="pipeform writes Alert and SLO rules to providers.prometheus.rulesDir: keep "
                "it out of the spec tree or in a hidden directory (the default is .pipeform/rules)",
            )
        ]
    if version is None:
        problems.append(
            error("apiVersion is missing", raw.start, hint=f"add apiVersion: {API_VERSION}")
        )
    elif version != API_VERSION:
        problems.append(
            error(
                f"apiVersion {_shown(version)} is not supported",
                raw.position(("apiVersion",)),
                hint=f"use apiVersion: {API_VERSION}",
            )
        )
    kind = data.get("kind")
    if kind == "TrustedConfig":
        return None, [
            error(
                "a trusted configuration does not belong in the spec tree: a pull request could edit it",
                raw.position(("kind",)),
                hint="keep it on the protected branch outside the spec directory and pass it with "
                "--trusted-config (docs/security.md)",
            )
        ]
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if kind is None:
        problems.append(
            error("kind is missing", raw.start, hint=f"add kind: one of {', '.join(KINDS)}")
        )
    elif model is None:
        problems.append(
            error(
                f"kind {_shown(kind)} is not known"
                if isinstance(kind, str)
                else f"kind must be the name of a kind, not {_shown(kind)}",
                raw.position(("kind",)),
                hint=(isinstance(kind, str) and suggestion(kind, KINDS))
                or f"use one of {', '.join(KINDS)}",
            )
        )
    return (None if problems else model), problems


def document_address(raw: RawDocument) -> str | None:
    data = raw.data if isinstance(raw.data, dict) else {}
    kind, meta = data.get("kind"), data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(kind, str) and isinstance(name, str) and name:
        return f"{kind}/{name}"
    return kind if isinstance(kind, str) else None


def _header_model(data: Any) -> type[Document] | None:
    """The model of a document whose apiVersion and kind are right (nearly every one),
    else None: ``_check_header`` then says what is wrong."""
    if isinstance(data, dict) and data.get("apiVersion") == API_VERSION:
        kind = data.get("kind")
        if isinstance(kind, str) and kind in KINDS:
            return KINDS[kind]
    return None


def parse_document(raw: RawDocument) -> tuple[Document | None, list[Diagnostic]]:
    """Validate one raw document against its kind's model."""
    model = _header_model(raw.data)
    if model is None:
        model, problems = _check_header(raw)
        if model is None:
            return None, [_with_address(d, raw) for d in problems]
    from pydantic import ValidationError

    from reconciler.kinds.common import FieldError

    try:
        # model_validate without its Python wrapper: the same validator, same errors
        return model.__pydantic_validator__.validate_python(raw.data), []
    except ValidationError as exc:
        problems = []
        seen: set[DataPath] = set()
        for err in exc.errors(include_url=False):
            path = _data_path(raw.data, err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):  # a check over a whole value that knows which part
                path = (*path, *cause.path)
            if path in seen:  # one message per place: unions report every member's failure
                continue
            seen.add(path)
            message, hint = _describe(err, path, model, raw.data)
            kind = err["type"]
            where = (
                raw.key_position(path)
                if kind == "extra_forbidden"
                else raw.position(path[:-1])
                if kind == "missing"
                else raw.position(path)
            )
            problems.append(
                error(
                    message, where, hint=hint, address=document_address(raw), path=format_path(path)
                )
            )
        return None, problems


def _with_address(d: Diagnostic, raw: RawDocument) -> Diagnostic:
    return Diagnostic(d.severity, d.message, d.position, document_address(raw), d.hint, d.path)
