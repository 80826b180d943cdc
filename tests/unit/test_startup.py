"""Start-up settings: pydantic's plugin scan stays off, and its loader is not imported for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import os, sys
from reconciler.cli import main
sys.argv = ["pipeform", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
loader = sys.modules.get("pydantic.plugin._loader")
print("metadata", "importlib.metadata" in sys.modules, file=sys.stderr)
print("pydantic", "pydantic" in sys.modules, file=sys.stderr)
print("loader", getattr(loader, "__doc__", "") or "", file=sys.stderr)
print("exit", code, file=sys.stderr)
"""

TREE = (
    "apiVersion: pipeform/v1\nkind: Workspace\nmetadata: {name: t}\n"
    "spec: {defaults: {provider: fake}}\n---\n"
    "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {gpus: 1}\n"
)


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "specs.yaml").write_text(TREE)
    return root


def probe(root: Path, *args: str, **env: str) -> dict[str, str]:
    """Run the CLI in a fresh interpreter (it must exit 0): what it imported, what stood in
    for pydantic's plugin loader, and its output."""
    base = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    # an entry-point cache of its own, outside the tree (python -c keys it by the cwd)
    base["XDG_CACHE_HOME"] = str(root.parent / "cache")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=root,
        timeout=60,
    )
    found = dict(
        line.split(" ", 1)
        for line in result.stderr.splitlines()
        if line.startswith(("metadata ", "pydantic ", "loader ", "exit "))
    )
    assert found.get("exit") == "0", result.stderr
    found["stdout"] = result.stdout
    return found


def test_validate_builds_models_without_importing_importlib_metadata(tmp_path: Path) -> None:
    root = tree(tmp_path)
    found = probe(root, "validate", ".")
    assert found["metadata"] == "False"
    assert "stand-in" in found["loader"]


def test_plan_with_a_warm_entry_point_cache_does_not_import_importlib_metadata(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path)
    (root / ".pipeform").mkdir()
    probe(root, "plan", ".")  # a cold entry-point cache is filled from importlib.metadata
    # an edited file is validated (an unchanged tree would import no pydantic at all)
    (root / "specs.yaml").write_text(TREE.replace("gpus: 1", "gpus: 2"))
    found = probe(root, "plan", ".")
    assert found["metadata"] == "False"
    assert "stand-in" in found["loader"]


def test_a_user_who_names_plugins_gets_pydantics_own_loader(tmp_path: Path) -> None:
    found = probe(tree(tmp_path), "validate", ".", PYDANTIC_DISABLE_PLUGINS="some_plugin")
    assert "stand-in" not in found["loader"]
    assert found["metadata"] == "True"  # pydantic scans entry points for the other plugins


def test_stand_in_answers_as_the_real_loader_would(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cli import startup

    stand_in = startup._stand_in()
    monkeypatch.setitem(sys.modules, startup.LOADER, stand_in)
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    assert tuple(stand_in.get_plugins()) == ()
    # any other name loads pydantic's real module in the stand-in's place
    assert stand_in.PYDANTIC_ENTRY_POINT_GROUP == "pydantic"
    assert sys.modules[startup.LOADER] is not stand_in
    assert hasattr(sys.modules[startup.LOADER], "get_plugins")


def test_a_read_only_command_leaves_fast_with_all_its_output_and_exit_code(
    tmp_path: Path,
) -> None:
    """run() ends plan with os._exit: the output (more than a pipe holds) must all be
    flushed first, and --detailed-exitcode's 2 must survive."""
    from tests.conftest import run_cli

    root = tmp_path / "tree"
    root.mkdir()
    quotas = "".join(
        f"---\napiVersion: pipeform/v1\nkind: Quota\nmetadata: {{name: quota-{i}}}\n"
        "spec: {gpus: 1}\n"
        for i in range(400)
    )
    (root / "specs.yaml").write_text(TREE.split("---")[0] + quotas)
    text = run_cli("plan", "--detailed-exitcode", str(root), env={"NO_COLOR": "1"})
    assert text.returncode == 2, text.stderr
    assert text.stdout.count("will be created") == 400
    assert "Plan: 400 to add, 0 to change, 0 to replace, 0 to destroy." in text.stdout
    as_json = run_cli("plan", "--json", str(root), env={"NO_COLOR": "1"})
    assert as_json.returncode == 0, as_json.stderr
    assert len(as_json.stdout) > 65536  # more than a pipe holds: flushed before the exit
    assert len(json.loads(as_json.stdout)["resource_changes"]) == 400


def test_the_command_name_is_found_after_the_group_option() -> None:
    from reconciler.cli import READ_ONLY, _command

    assert _command(["--debug", "plan", "."]) == "plan"
    assert _command(["apply", "--auto-approve"]) == "apply"
    assert _command([]) is None
    assert "apply" not in READ_ONLY and "destroy" not in READ_ONLY
