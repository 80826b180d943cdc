"""Fuzzing ``pipeform validate``: whatever a spec file holds, no internal error, ever.

Hypothesis writes files of documents of every kind, starting from a valid document and
breaking it: numbers at their limits (integers of thousands of digits, 0x and sexagesimal
integers, 1e308 and 1.0e+309, NaN, infinities, -0.0, numeric strings with units), odd
unicode (right-to-left marks, zero-width and combining characters, astral and private
code points), wrong types in any field, unknown keys and keys that are numbers, nesting
just short of and past the parser's depth limit. Each file is validated in-process
through the command line (click's runner), in text and in JSON.

The property is the user's: every outcome is either valid or a list of diagnostics, each
with a message and, when it concerns a file, its file:line:col; never "unexpected internal
error"; and ``validate --json`` always prints one parseable JSON document whose verdict
matches the exit code. Deterministic (derandomize) and bounded in size, for CI.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import cli
from reconciler.spec.source import MAX_DEPTH

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Raw:
    """A YAML scalar written exactly as given (a number, a tag, a quoted string)."""

    text: str


#: Numbers at their limits, as YAML text.
HOSTILE_NUMBERS = [
    "9" * 5000,
    "-" + "9" * 5000,
    "9" * 400,
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "0x" + "f" * 5000,
    "0x7fffffffffffffff",
    "0o" + "7" * 30,
    "0b" + "1" * 99,
    "1_000_000",
    "190:20:30",
    "1" + ":59" * 30,
    "1.0e+309",
    "-1.0e+309",
    "1e308",
    "1.7976931348623157e+308",
    "2.2250738585072014e-308",
    "5e-324",
    "-0.0",
    "0",
    "-1",
    "0.5",
]

#: Other values at their limits: NaN and infinities, tagged and quoted numbers, numbers
#: with units, patterns, and values of the wrong type for most fields.
HOSTILE_VALUES = [
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "+.inf",
    "1e3",
    "1.0e+3",
    "!!float '1e400'",
    "!!int '0x" + "f" * 120 + "'",
    "!!float '.nan'",
    "!!int 'four'",
    "true",
    "null",
    "~",
    "''",
    f"'{'9' * 400}s'",
    f"'{'9' * 400}'",
    f"'{'9' * 400}Gi'",
    f"'0.{'0' * 400}1'",
    f"'${'9' * 30}'",
    "'$1,000,000,000,000,000'",
    "'999999999999999.999999'",
    "'1e400'",
    "'nan'",
    "'inf'",
    "'-0'",
    "'1Ei'",
    "'1025Pi'",
    "'3650d'",
    "'3651d'",
    "'0.0001'",
    "'1000001'",
    "'１２３s'",
    "'٣m'",
    "'a{99999999999999999999}'",
    "'(a{10}){101}'",
    "'(?=a)'",
    "'" + "(" * 600 + ")" * 600 + "'",
    "'[a-z+'",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: 1}}",
]
HOSTILE_SCALARS = HOSTILE_NUMBERS + HOSTILE_VALUES

ODD_TEXT = [
    "\u202eevil\u202c",
    "مرحبا",
    "שלום",
    "a\u200bb",
    "e\u0301",
    "\U0001f984",
    "\U0010fffd",
    "\ufffd",
    "\u4e2d\u6587",
    "Ⅻ",
    "ǅ",
    "\u00a0",
    "x" * 70,
    "Kind/name",
    "[bold]not markup[/bold]",
    "%s %(x)s {0}",
    "team_a",
    "TeamA",
]

KINDS: dict[str, dict[str, Any]] = {
    "Workspace": {
        "state": {"backend": "sqlite", "path": ".pipeform/state.db"},
        "defaults": {"labels": {"team": "growth"}, "resources": {"cpu": 2, "memory": "4Gi"}},
        "pricing": {"currency": "USD", "cpuHour": 0.04, "gpuHour": {"h100": 4.0}},
        "policy": {"requiredLabels": ["team"]},
    },
    "Dataset": {
        "source": {"uri": "file://events.csv", "format": "csv"},
        "schema": [
            {"name": "id", "type": "int", "nullable": False, "min": 0, "max": 100},
            {"name": "code", "type": "string", "regex": "[A-Z]{2}-[0-9]{4}"},
            {"name": "kind", "type": "int", "allowed": [1, 2, 3]},
        ],
        "validation": {"minRows": 10, "maxNullFraction": {"*": 0.3}, "drift": {"maxPsi": 0.2}},
    },
    "FeatureSet": {
        "dataset": "events",
        "entity": ["id"],
        "label": {"column": "kind"},
        "split": {"type": "random", "validationFraction": 0.2, "seed": 7},
        "features": [{"name": "code", "transforms": [{"type": "onehot"}]}],
    },
    "TrainingJob": {
        "features": "churn-features",
        "model": {"type": "mlp", "task": "binary-classification", "hidden": [64, 32]},
        "hyperparameters": {"epochs": 20, "learningRate": 0.001, "seed": 42},
        "resources": {"cpu": "500m", "memory": "4Gi"},
        "checkpoint": {"every": "10m", "keep": 3},
        "maxDuration": "30m",
        "gates": [{"metric": "auc", "min": 0.7}],
        "env": {"LOG_FORMAT": {"value": "json"}},
    },
    "Quota": {"namespace": "growth", "cpu": 4, "memory": "8Gi", "gpus": 0},
    "Secret": {"from": {"env": "API_TOKEN"}},
    "Alert": {"expr": "up == 0", "for": "5m", "severity": "critical"},
    "SLO": {
        "sli": {"good": "sum(rate(ok[{{window}}]))", "total": "sum(rate(all[{{window}}]))"},
        "objective": 99,
        "window": "28d",
    },
    "Budget": {"amount": 1000, "currency": "USD", "period": "monthly", "thresholds": [50, 100]},
}


def document(kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "pipeform/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"team": "growth"}},
        "spec": json.loads(json.dumps(KINDS[kind])),  # a deep copy
    }


# -- writing YAML, including scalars that no serialiser would write -----------------------


def flow(value: Any) -> str:
    """Flow-style YAML (JSON-like), with Raw scalars as written."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def block(value: Any, indent: int = 0) -> str:
    """Block-style YAML for mappings, flow style below the first list."""
    pad = " " * indent
    if not isinstance(value, dict) or not value:
        return pad + flow(value) + "\n"
    out = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.append(f"{pad}{flow(key)}:\n{block(item, indent + 2)}")
        else:
            out.append(f"{pad}{flow(key)}: {flow(item)}\n")
    return "".join(out)


# -- breaking documents -------------------------------------------------------------------


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside value (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, item in items:
        found.append((*path, key))
        found.extend(places(item, (*path, key)))
    return found


def put(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent_of(root, path)[path[-1]] = value


def parent_of(root: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = root
    for key in path[:-1]:
        node = node[key]
    return node


def yaml_float(number: float) -> str:
    """A float as YAML writes it: .nan, .inf and -.inf for the ones Python spells otherwise."""
    if number != number:
        return ".nan"
    if number in (float("inf"), float("-inf")):
        return ".inf" if number > 0 else "-.inf"
    return repr(number)


def nested(depth: int, leaf: Any, as_list: bool) -> Any:
    for _ in range(depth):
        leaf = [leaf] if as_list else {"k": leaf}
    return leaf


#: Any character YAML allows in a file: no surrogates, no control characters (one stops
#: the whole file, which the corpus covers), no non-characters U+FFFE and U+FFFF.
PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")

scalars = st.one_of(
    st.sampled_from(HOSTILE_SCALARS).map(Raw),
    st.sampled_from(ODD_TEXT),
    st.text(PRINTABLE, max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: Raw(yaml_float(f))),
    st.booleans(),
    st.none(),
)

values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(ODD_TEXT), st.text(PRINTABLE, max_size=6)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)

deep = st.builds(
    nested,
    st.integers(min_value=MAX_DEPTH - 8, max_value=MAX_DEPTH + 8),
    scalars,
    st.booleans(),
)


@st.composite
def broken_document(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    doc = document(kind, draw(st.sampled_from(["ok", "team-a", "a" * 63])))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(places(doc)))
        what = draw(
            st.sampled_from(["value", "value", "deep", "unknown-key", "number-key", "drop"])
        )
        if what == "value":
            put(doc, where, draw(st.one_of(scalars, values)))
        elif what == "deep":
            put(doc, where, draw(deep))
        elif what in ("unknown-key", "number-key") and isinstance(parent_of(doc, where), dict):
            key = (
                draw(st.sampled_from(ODD_TEXT))
                if what == "unknown-key"
                else Raw(draw(st.sampled_from(HOSTILE_NUMBERS)))
            )
            parent_of(doc, where)[key] = draw(scalars)
        elif what == "drop" and isinstance(parent_of(doc, where), dict):
            parent_of(doc, where).pop(where[-1])
    return doc


@st.composite
def spec_file(draw: st.DrawFn) -> str:
    """One YAML file: one to three documents, broken, in flow or block style."""
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=3))
    texts = []
    for kind in kinds:
        doc = draw(broken_document(kind))
        texts.append(block(doc) if draw(st.booleans()) else flow(doc) + "\n")
    return "---\n".join(texts)


#: A whole pipeline whose documents refer to each other, so that a value that passes its
#: own document's checks reaches the checks across documents (references, columns, graph).
PIPELINE: list[tuple[str, str, dict[str, Any]]] = [
    ("Workspace", "ws", {}),
    ("Dataset", "events", {}),
    ("FeatureSet", "churn-features", {"features": [{"name": "code"}, {"name": "id"}]}),
    ("TrainingJob", "churn", {"quota": "team-a", "env": {"TOKEN": {"secret": "token"}}}),
    ("Quota", "team-a", {}),
    ("Secret", "token", {}),
    ("Alert", "failing", {"expr": None, "template": {"type": "training-failed", "job": "churn"}}),
    ("SLO", "success", {}),
    ("Budget", "monthly", {"scope": {"labels": {"team": "growth"}}}),
]


def pipeline() -> list[dict[str, Any]]:
    docs = []
    for kind, name, changes in PIPELINE:
        doc = document(kind, name)
        for key, value in changes.items():
            if value is None:
                doc["spec"].pop(key)
            else:
                doc["spec"][key] = json.loads(json.dumps(value))  # fuzzing changes it in place
        doc["metadata"]["dependsOn"] = ["Secret/token"] if kind == "Quota" else []
        docs.append(doc)
    return docs


@st.composite
def pipeline_file(draw: st.DrawFn) -> str:
    """A valid pipeline with one to three values anywhere in it replaced."""
    docs = pipeline()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        doc = draw(st.sampled_from(docs))
        put(doc, draw(st.sampled_from(places(doc))), draw(st.one_of(scalars, values)))
    return "---\n".join(flow(doc) + "\n" for doc in docs)


# -- the property -------------------------------------------------------------------------


def validate(tree: Path, *options: str, env: dict[str, str] | None = None) -> Any:
    """``pipeform validate`` in this process, as the console script runs it."""
    result = CliRunner().invoke(
        cli, ["validate", *options, str(tree)], standalone_mode=False, env=env
    )
    if result.exception is not None:
        raise AssertionError(f"validate {' '.join(options)} raised") from result.exception
    return result


def assert_validates_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        tree = Path(directory)
        (tree / "specs.yaml").write_text(text, encoding="utf-8")

        result = validate(tree, "--json")
        body = json.loads(result.stdout)  # one JSON document, always
        assert result.return_value == (0 if body["valid"] else 1)
        assert body["valid"] == (body["error_count"] == 0)
        for diagnostic in body["diagnostics"]:
            assert diagnostic["summary"].strip(), diagnostic
            assert "internal error" not in diagnostic["summary"], diagnostic
            where = diagnostic.get("range")
            assert where is not None, f"no file:line:col: {diagnostic}"
            assert where["filename"].endswith("specs.yaml") and where["start"]["line"] >= 1

        text_run = validate(tree, env={"NO_COLOR": "1"})
        assert text_run.return_value == result.return_value
        assert "internal error" not in text_run.output


@FUZZ
@given(spec_file())
def test_validate_never_fails_with_an_internal_error(text: str) -> None:
    assert_validates_cleanly(text)


@FUZZ
@given(pipeline_file())
def test_validate_never_fails_on_a_pipeline_with_a_hostile_value(text: str) -> None:
    assert_validates_cleanly(text)


def test_the_unbroken_pipeline_is_valid() -> None:
    """The pipeline fuzz starts from a valid tree, so its checks across documents run."""
    with tempfile.TemporaryDirectory() as directory:
        tree = Path(directory)
        (tree / "specs.yaml").write_text("---\n".join(map(block, pipeline())), encoding="utf-8")
        result = validate(tree, "--json")
    assert json.loads(result.stdout)["diagnostics"] == [] and result.return_value == 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_unbroken_is_valid_on_its_own_or_says_what_it_needs(kind: str) -> None:
    """The fuzz starts from documents that validate (or lack only their references)."""
    with tempfile.TemporaryDirectory() as directory:
        tree = Path(directory)
        (tree / "specs.yaml").write_text(block(document(kind, "ok")), encoding="utf-8")
        body = json.loads(validate(tree, "--json").stdout)
    problems = [d["summary"] for d in body["diagnostics"] if d["severity"] == "error"]
    assert all("which does not exist" in p or "holds no resources" in p for p in problems), problems


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_hostile_number_in_every_field(kind: str) -> None:
    """Every field of every kind takes every number at its limits: one document for each
    field and number, all in one file (a problem in one document does not stop the rest)."""
    fields = places(document(kind, "ok"))
    variants = []
    for i, (where, raw) in enumerate((w, r) for w in fields for r in HOSTILE_SCALARS):
        broken = document(kind, f"d{i}")
        put(broken, where, Raw(raw))
        variants.append(flow(broken) + "\n")
    assert_validates_cleanly("---\n".join(variants))


def test_json_is_printed_even_when_validation_itself_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: a bug in a check still leaves tools a JSON document."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr("reconciler.spec.checks.check", broken)
    result = CliRunner().invoke(cli, ["validate", "--json", "."], standalone_mode=False)
    assert result.exception is None and result.return_value == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False and body["error_count"] == 1
    assert body["diagnostics"][0]["summary"].startswith("unexpected internal error: RuntimeError")
