"""The promises of docs/security.md: a plan of untrusted specs reads only inside the tree
and the state backend, contacts only endpoints from trusted configuration, writes only
under the tree's .pipeform, never executes what a spec names, never prints a remote
server's response body. Each test runs the real `pipeform` command as CI would."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CopyExample, run_cli

WORKSPACE = """
apiVersion: pipeform/v1
kind: Workspace
metadata: {{name: pr}}
spec:
{settings}
"""

RESOURCES = """
apiVersion: pipeform/v1
kind: Alert
metadata: {name: errors-high}
spec:
  expr: rate(errors_total[5m]) > 1
  for: 5m
  severity: warning
---
apiVersion: pipeform/v1
kind: Quota
metadata: {name: team}
spec: {gpus: 1}
"""

BODY_MARKER = "internal-body-7f3e-do-not-print"


class Recorder(http.server.BaseHTTPRequestHandler):
    """An HTTP server that records every request and answers 500 with a body."""

    seen: list[str]

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        body = f"<html>{BODY_MARKER}: database password is hunter2</html>".encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tree(tmp_path: Path, settings: str = "  defaults: {provider: local}") -> Path:
    root = tmp_path / "pr"
    root.mkdir()
    (root / "pipeform.yaml").write_text(WORKSPACE.format(settings=settings).lstrip())
    (root / "resources.yaml").write_text(RESOURCES.lstrip())
    return root


def _trusted(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "protected" / "pipeform-trusted.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"apiVersion: pipeform/v1\nkind: TrustedConfig\nspec:\n{spec}\n")
    return path


def _listing(root: Path) -> dict[str, int]:
    """Every path under root (links not followed) with its size, for before/after checks."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            out[str(path.relative_to(root))] = path.lstat().st_size
    return out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPEFORM_")}
    return {**env, **extra}


# -- endpoints ------------------------------------------------------------------------------


def test_an_endpoint_set_by_the_specs_is_refused_before_it_is_contacted(
    tmp_path: Path, server: tuple[str, list[str]]
) -> None:
    url, seen = server
    root = _tree(tmp_path)
    assert run_cli("apply", "--auto-approve", str(root), env=_env()).returncode == 0
    # the pull request points the Prometheus provider at an internal address
    (root / "pipeform.yaml").write_text(
        WORKSPACE.format(settings=f"  providers:\n    prometheus: {{url: '{url}'}}").lstrip()
    )
    result = run_cli("plan", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "pipeform.yaml:6:23:" in result.stderr, result.stderr
    assert "spec.providers.prometheus.url is set by the specs" in result.stderr
    assert seen == [], "the plan contacted an endpoint the specs named"
    # the same through the environment, as CI sets it
    result = run_cli("plan", str(root), env=_env(PIPEFORM_UNTRUSTED="1"))
    assert result.returncode == 1 and seen == []
    # a trusted run (a developer's own) still uses it
    trusted_run = run_cli("plan", str(root), env=_env())
    assert seen, "a trusted run did not contact the Workspace's Prometheus"
    assert BODY_MARKER not in trusted_run.stdout + trusted_run.stderr


def test_a_lineage_endpoint_set_by_the_specs_is_refused_before_any_event_is_sent(
    tmp_path: Path, server: tuple[str, list[str]]
) -> None:
    url, seen = server
    root = _tree(tmp_path, f"  lineage: {{url: '{url}', file: ../outside.jsonl}}")
    for command in (["plan", "--untrusted"], ["apply", "--auto-approve"]):
        result = run_cli(*command, str(root), env=_env(PIPEFORM_UNTRUSTED="1"))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "spec.lineage is set by the specs" in result.stderr, result.stderr
    assert seen == [], "an untrusted run sent lineage events where the specs said"
    assert not (tmp_path / "outside.jsonl").exists()


def test_an_endpoint_from_trusted_configuration_is_used_and_its_body_never_printed(
    tmp_path: Path, server: tuple[str, list[str]]
) -> None:
    url, seen = server
    root = _tree(tmp_path)
    assert run_cli("apply", "--auto-approve", str(root), env=_env()).returncode == 0
    (root / "pipeform.yaml").write_text(
        WORKSPACE.format(settings=f"  providers:\n    prometheus: {{url: '{url}'}}").lstrip()
    )
    trusted = _trusted(tmp_path, f"  providers:\n    prometheus: {{url: '{url}'}}")
    for fmt in ("text", "markdown", "json"):
        result = run_cli("plan", "--format", fmt, "--trusted-config", str(trusted), str(root))
        assert seen, "the trusted endpoint was not contacted"
        output = result.stdout + result.stderr
        assert "HTTP 500" in output, output
        assert BODY_MARKER not in output and "hunter2" not in output, fmt
    env = _env(PIPEFORM_TRUSTED_CONFIG=str(trusted))
    result = run_cli("plan", str(root), env=env)
    assert "HTTP 500" in result.stdout + result.stderr


def test_a_trusted_configuration_is_checked_and_kept_out_of_the_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    trusted = _trusted(tmp_path, "  providers:\n    prometheus: {url: 'http://x', colour: red}")
    result = run_cli("plan", "--trusted-config", str(trusted), str(root), env=_env())
    assert result.returncode == 1
    assert "pipeform-trusted.yaml:5:" in result.stderr
    assert "spec.providers.prometheus.colour is not a setting that trusted configuration holds" in (
        result.stderr
    )
    shutil.copy(trusted, root / "trusted.yaml")
    result = run_cli("validate", str(root), env=_env())
    assert result.returncode == 1
    assert "trusted.yaml:2:" in result.stderr
    assert "does not belong in the spec tree" in result.stderr


def test_every_setting_that_names_an_endpoint_or_location_is_a_trusted_setting() -> None:
    """A new Workspace field that names a URL, path, directory, profile or cluster is
    trusted unless it is one of the settings listed here as harmless."""
    from pydantic import BaseModel

    from reconciler.kinds.workspace import WorkspaceSpec
    from reconciler.spec.trust import trusted_paths
    from reconciler.spec.validate import union_members

    trusted = trusted_paths()
    reach_words = ("url", "uri", "endpoint", "path", "dir", "kubeconfig", "context", "profile")
    reach_words += ("bucket", "dsn", "table", "region", "namespace", "host", "external", "key")

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        for name, info in model.model_fields.items():
            path = (*prefix, info.alias or name)
            if any(path[: len(t)] == t for t in trusted):
                continue
            if any(word in name.lower() for word in reach_words):
                found.append(path)
            for member in union_members(info.annotation):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    found.extend(walk(member, path))
        return found

    assert walk(WorkspaceSpec, ()) == []
    assert ("state",) in trusted and ("providers", "prometheus", "url") in trusted


# -- reading ------------------------------------------------------------------------------


def test_external_paths_cannot_be_allowed_by_the_specs(tmp_path: Path) -> None:
    root = _tree(tmp_path, "  providers:\n    local: {allowExternalPaths: true}")
    (root / "data.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Dataset\nmetadata: {name: passwd}\n"
        "spec:\n  source: {uri: 'file:///etc/passwd', format: csv}\n"
    )
    result = run_cli("plan", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "spec.providers.local.allowExternalPaths is set by the specs" in result.stderr
    assert "root:" not in result.stdout + result.stderr
    # without the setting the Dataset's path is refused as outside the tree, and not read
    (root / "pipeform.yaml").write_text(WORKSPACE.format(settings="  defaults: {}").lstrip())
    result = run_cli("plan", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "outside the spec tree" in result.stdout + result.stderr
    assert "root:" not in result.stdout + result.stderr


def test_a_spec_file_linked_from_outside_the_tree_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "credentials.yaml"
    secret.write_text("aws_secret_access_key: AKIA-outside-the-tree\n")
    root = _tree(tmp_path)
    (root / "stolen.yaml").symlink_to(secret)
    result = run_cli("validate", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "stolen.yaml is a symlink to a file outside the spec tree" in result.stderr
    assert "AKIA" not in result.stdout + result.stderr


# -- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    ["{backend: sqlite, path: ../elsewhere/state.db}", "{backend: sqlite, path: /dev/null}"],
)
def test_the_state_location_comes_only_from_trusted_configuration(
    tmp_path: Path, state: str
) -> None:
    root = _tree(tmp_path, f"  state: {state}")
    before = _listing(tmp_path)
    result = run_cli("plan", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "spec.state.path is set by the specs" in result.stderr
    assert _listing(tmp_path) == before, "the refused plan wrote something"
    assert not Path("/dev/null-journal").exists()


def test_a_committed_pipeform_symlink_is_not_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = _tree(tmp_path)
    (root / ".pipeform").symlink_to(elsewhere)
    result = run_cli("plan", "--untrusted", str(root), env=_env())
    assert result.returncode == 1
    assert "passes through the symlink .pipeform" in result.stderr
    assert list(elsewhere.iterdir()) == []
    # validate writes its spec cache only to a real .pipeform directory, in any run
    assert run_cli("validate", str(root), env=_env()).returncode == 0
    assert list(elsewhere.iterdir()) == []


def test_an_untrusted_plan_writes_only_under_the_trees_pipeform(
    tmp_path: Path, copy_example: CopyExample
) -> None:
    root = copy_example()
    top = root.parent
    env = _env(QUICKSTART_METRICS_TOKEN="x")
    trusted = _trusted(tmp_path, "  state: {backend: sqlite, path: .pipeform/state.db}")
    before = _listing(top), _listing(tmp_path)
    result = run_cli("plan", "--trusted-config", str(trusted), str(root), env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "8 to add" in result.stdout
    after = _listing(top), _listing(tmp_path)
    assert after[1] == before[1]
    added = {p for p in after[0] if p not in before[0]}
    changed = {p for p in before[0] if p in after[0] and after[0][p] != before[0][p]}
    assert all(p.startswith("quickstart/.pipeform") for p in added | changed), added | changed


# -- executing ----------------------------------------------------------------------------


def test_a_plan_never_runs_model_code_that_a_spec_names(
    tmp_path: Path, copy_example: CopyExample
) -> None:
    root = copy_example()
    marker = tmp_path / "ran"
    (root / "evil_model.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "def build(n_features, n_outputs):\n    raise SystemExit\n"
    )
    training = (root / "training.yaml").read_text()
    training = training.replace(
        "    type: mlp\n    task: binary-classification\n    hidden: [64, 32]\n    dropout: 0.1\n",
        "    type: custom\n    task: binary-classification\n    entrypoint: evil_model:build\n",
    )
    (root / "training.yaml").write_text(training)
    result = run_cli(
        "plan", "--untrusted", str(root), env=_env(QUICKSTART_METRICS_TOKEN="x"), timeout=120
    )
    assert result.returncode in (0, 2), result.stderr
    assert not marker.exists(), "plan imported the model code a spec named"
