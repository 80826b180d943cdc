"""The command line as a user meets it: exit codes, output, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from click.testing import CliRunner

from reconciler import cli
from tests.conftest import ROOT, CopyExample, run_cli

HEAVY = ("torch", "pyarrow", "boto3", "psycopg", "kubernetes", "mlflow", "pandas", "numpy")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    heavy, pydantic_loaded = out.strip().splitlines()[-2:]
    assert heavy == "[]"
    assert pydantic_loaded == "False"  # not even the models: --help is click alone


def test_validate_quickstart_succeeds(copy_example: CopyExample) -> None:
    result = run_cli("validate", str(copy_example()))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Success! 8 resources and a Workspace in 6 files are valid."


def test_validate_says_when_the_tree_has_no_workspace(write_tree: Any) -> None:
    root = write_tree(
        **{"q.yaml": "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: a}\nspec: {gpus: 1}\n"}
    )
    result = run_cli("validate", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Success! 1 resource in 1 file is valid (no Workspace document: its defaults apply)."
    )


def test_validate_defaults_to_the_current_directory(copy_example: CopyExample) -> None:
    result = run_cli("validate", cwd=copy_example())
    assert result.returncode == 0, result.stderr


def test_validate_json_reports_every_error_with_a_range(write_tree: Any) -> None:
    root = write_tree(
        **{
            "a.yaml": "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpuz: 1}\n",
            "b.yaml": "apiVersion: pipeform/v2\nkind: Quota\nmetadata: {name: r}\nspec: {gpus: 1}\n",
        }
    )
    result = run_cli("validate", "--json", str(root))
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False and body["error_count"] == 2
    lines = sorted(
        (Path(d["range"]["filename"]).name, d["range"]["start"]["line"])
        for d in body["diagnostics"]
    )
    assert lines == [("a.yaml", 4), ("b.yaml", 1)]
    assert any(d["detail"] == "did you mean gpus?" for d in body["diagnostics"])


def test_errors_have_no_colour_when_not_a_terminal_and_no_traceback(write_tree: Any) -> None:
    root = write_tree(**{"a.yaml": "kind: Nope\n"})
    result = run_cli("validate", str(root))
    assert result.returncode == 1
    assert "\x1b[" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "a.yaml:1:1" in result.stderr


def test_no_color_is_honoured_on_a_terminal(write_tree: Any) -> None:
    root = write_tree(**{"a.yaml": "kind: Nope\n"})
    env = {**os.environ, "FORCE_COLOR": "1"}
    coloured = run_cli("validate", str(root), env=env)
    plain = run_cli("validate", str(root), env={**env, "NO_COLOR": "1"})
    assert "\x1b[" in coloured.stderr
    assert "\x1b[" not in plain.stderr


def test_usage_errors_exit_1_not_2() -> None:
    # 2 means "changes present" for plan --detailed-exitcode; a typo must not look like that.
    result = run_cli("valdate")
    assert result.returncode == 1
    assert "No such command 'valdate'" in result.stderr


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr


def test_internal_errors_hide_the_traceback_unless_debug(
    monkeypatch: Any, copy_example: CopyExample
) -> None:
    import reconciler.spec.checks

    quickstart = str(copy_example())

    def boom(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(reconciler.spec.checks, "check", boom)
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["validate", quickstart], catch_exceptions=True)
    assert isinstance(result.exception, RuntimeError)
    try:
        cli.main(["validate", quickstart])
    except SystemExit as exc:
        assert exc.code == 1
    try:
        cli.main(["--debug", "validate", quickstart])
    except RuntimeError as exc:
        assert str(exc) == "disk on fire"
    else:
        raise AssertionError("--debug must let the traceback through")


def test_graph_dot_and_levels(copy_example: CopyExample) -> None:
    quickstart = str(copy_example())
    dot = run_cli("graph", quickstart)
    assert dot.returncode == 0 and dot.stdout.startswith("digraph pipeform {")
    levels = run_cli("graph", "--format", "levels", quickstart).stdout.splitlines()
    assert levels[0].startswith("1: ") and "Dataset/rand-hie" in levels[0]
    assert levels[-1].startswith("4: ") and "Alert/expense-model-failed" in levels[-1]


def test_schema_validates_every_quickstart_document(copy_example: CopyExample) -> None:
    schema = json.loads(run_cli("schema").stdout)
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    for path in sorted(copy_example().glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            errors = list(validator.iter_errors(doc))
            assert not errors, (path.name, [e.message for e in errors])
            count += 1
    assert count == 9


def test_schema_rejects_a_typo_an_editor_would_flag(copy_example: CopyExample) -> None:
    schema = json.loads(run_cli("schema", "trainingjob").stdout)
    doc = yaml.safe_load((copy_example() / "training.yaml").read_text())
    doc["spec"]["hyperparameters"]["lerningRate"] = 0.1
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc)


def test_schema_unknown_kind_suggests() -> None:
    result = run_cli("schema", "Datset")
    assert result.returncode == 1
    assert "did you mean Dataset?" in result.stderr


def test_version() -> None:
    result = run_cli("version", "--json")
    info = json.loads(result.stdout)
    assert info["pipeform"] == "0.1.0"
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))


def test_checked_in_schemas_match_the_models() -> None:
    from reconciler.spec.schema import rendered

    stale = [
        name
        for name, text in rendered().items()
        if not (ROOT / "specs" / "schema" / name).exists()
        or (ROOT / "specs" / "schema" / name).read_text() != text
    ]
    assert not stale, f"specs/schema is out of date ({', '.join(stale)}): run `make generate`"
