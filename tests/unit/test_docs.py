"""Generated files stay in sync with the code, and every spec field is documented.

The JSON Schemas in specs/schema/ and the reference pages in docs/reference/ are what
editors and readers see; a change to a model or a command must regenerate them.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reconciler.cli import docgen, spec_reference
from reconciler.kinds import KINDS
from reconciler.spec import schema

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `make generate` and commit the result"


def _stale(expected: dict[str, str], directory: Path) -> list[str]:
    return [
        name
        for name, text in expected.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def test_json_schemas_match_the_models() -> None:
    directory = ROOT / "specs" / "schema"
    expected = schema.rendered()
    stale = _stale(expected, directory)
    extra = sorted(p.name for p in directory.glob("*.json") if p.name not in expected)
    assert not stale, f"specs/schema/ is out of date ({', '.join(stale)}); {REGENERATE}"
    assert not extra, (
        f"specs/schema/ has files no kind generates ({', '.join(extra)}); {REGENERATE}"
    )


def test_reference_docs_match_the_models_and_cli() -> None:
    stale = _stale(docgen.rendered(), ROOT)
    assert not stale, f"{', '.join(stale)} out of date; {REGENERATE}"


def test_docgen_check_names_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/reference/specs.md" in capsys.readouterr().err
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / docgen.CLI_MD).write_text("edited by hand\n", encoding="utf-8")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/reference/cli.md" in err and "make generate" in err
    assert "specs.md" not in err


def test_spec_reference_lists_nested_and_variant_fields() -> None:
    page = spec_reference.specs_markdown()
    for path in (
        "`spec.hyperparameters.learningRate`",
        "`spec.features[].transforms[].boundaries`",
        "`spec.split.validationFrom`",
        "`metadata.lifecycle.preventDestroy`",
    ):
        assert path in page, path
    assert "duration (30s, 10m, 24h, 28d)" in page
    duration_defaults = [
        line for line in page.splitlines() if "| duration" in line and "| default `" in line
    ]
    assert duration_defaults
    for line in duration_defaults:  # shown as a user writes them (6h), not in seconds (21600.0)
        assert re.search(r"\| default `(\d+(ms|s|m|h|d|w))+` \|", line), line


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Every model class named in an annotation, through Annotated, unions, list and dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        args = args[:1]
    elif origin is None:  # a plain type such as str: nothing inside
        return
    for arg in args:
        yield from _models_in(arg)


def _all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = list(KINDS.values())
    while todo:
        model = todo.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return seen


def _undocumented() -> list[str]:
    problems = []
    for model in _all_models():
        for name, field in model.model_fields.items():
            where = f"{model.__module__}.{model.__name__}.{name}"
            description = (field.description or "").strip()
            if not description:
                problems.append(f"{where}: no description")
            elif not field.is_required() and "Default" not in description:
                problems.append(
                    f"{where}: optional, but the description does not state its Default"
                )
    return problems


def test_model_walk_reaches_nested_models() -> None:
    names = {model.__name__ for model in _all_models()}
    assert {"Metadata", "Lifecycle", "Hyperparameters", "Clip", "TemporalSplit"} <= names
    assert {"SecretRef", "AwsSecretsManagerSource", "S3State"} <= names  # keyed/tagged unions


def test_every_field_is_described_and_states_its_default() -> None:
    problems = _undocumented()
    assert not problems, (
        "spec fields need a description (shown in editors and docs/reference/specs.md), and "
        "optional ones must say 'Default: ...':\n  " + "\n  ".join(problems)
    )


def test_limits_page_states_every_loader_limit() -> None:
    from reconciler.spec import source as yamlsource

    page = (ROOT / "docs" / "reference" / "limits.md").read_text(encoding="utf-8")
    limits = {k: v for k, v in vars(yamlsource).items() if k.startswith("MAX_")}
    assert len(limits) >= 5
    for name, value in limits.items():
        shown = f"{value // 2**20} MiB" if name.endswith("_BYTES") else f"{value:,}"
        row = next((line for line in page.splitlines() if f"`{name}`" in line), "")
        assert shown in row, f"docs/reference/limits.md: add or fix the {name} row (it is {shown})"


def _pages() -> list[Path]:
    """The Markdown a user reads: the top-level pages, docs/, and the packages' READMEs."""
    top = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    return top + sorted((ROOT / "docs").rglob("*.md")) + sorted(ROOT.glob("*/README.md"))


def test_every_relative_link_in_the_docs_resolves_inside_the_repository() -> None:
    """A clone stands alone: no page points at a file beside the repository."""
    broken = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        targets = re.findall(r"\]\(([^)\s]+)\)", text)  # [text](target)
        targets += re.findall(r"`(\.\./[^`\s]+)`", text)  # a path in code that climbs out
        for target in targets:
            path = target.split("#", 1)[0]
            if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):  # an anchor or a URL
                continue
            resolved = (page.parent / path).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that are not in the repository:\n" + "\n".join(broken)


def test_ci_runs_the_readmes_two_commands_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.splitlines() if line.strip().startswith("make ")]
    assert commands == ["make quickstart", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    run = [line.strip() for line in ci.splitlines() if line.strip().startswith("make ")]
    assert run == commands, ".ci/run must run the README's two commands, in its order"
