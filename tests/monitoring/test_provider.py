"""The prometheus provider on the embedded default (no Prometheus URL): the file is live."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from providers.base import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    PermanentError,
    ReadRequest,
    ResourceContext,
    RetryableError,
)
from providers.prometheus import PrometheusProvider
from reconciler.kinds import KINDS
from reconciler.plan.planner import desired_document
from tests.conftest import CopyExample
from tests.monitoring.samples import ALERT_TEMPLATES, SLI_TEMPLATES, alert, slo

OURS = "11111111-1111-4111-8111-111111111111"
THEIRS = "22222222-2222-4222-8222-222222222222"


def _provider(root: Path, **config: Any) -> PrometheusProvider:
    return PrometheusProvider({"workspace": {"name": "quickstart"}, **config}, root)


def _ctx(root: Path, address: str, lineage: str = OURS) -> ResourceContext:
    return ResourceContext.of(address, lineage, root)


def _create(
    p: PrometheusProvider, address: str, doc: dict[str, Any], lineage: str = OURS
) -> ApplyResponse:
    return p.create(ApplyRequest(_ctx(p.root, address, lineage), doc, None, {}, None, {}))


def _quickstart_documents(quickstart: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for raw in yaml.safe_load_all((quickstart / "monitoring.yaml").read_text()):
        model = KINDS[raw["kind"]].model_validate(raw)
        out.append((f"{raw['kind']}/{raw['metadata']['name']}", desired_document(model, {})))
    return out


def test_the_quickstart_alert_and_slo_apply_with_nothing_running(
    tmp_path: Path, copy_example: CopyExample
) -> None:
    documents = _quickstart_documents(copy_example())
    p = _provider(tmp_path, rulesDir=".pipeform/rules")
    responses = [_create(p, a, d) for a, d in documents]
    path = tmp_path / ".pipeform/rules/pipeform-quickstart.rules.yml"
    text = path.read_text()
    assert f"# pipeform-owner: Alert/expense-model-failed lineage={OURS}" in text
    groups = yaml.safe_load(text)["groups"]
    assert [g["name"] for g in groups] == [
        "Alert/expense-model-failed",
        "SLO/expense-model-success",
    ]
    assert groups[0]["rules"][0]["alert"] == "ExpenseModelFailed"
    assert responses[0].outputs == {
        "file": ".pipeform/rules/pipeform-quickstart.rules.yml",
        "group": "Alert/expense-model-failed",
        "rules": 1,
        "alerts": ["ExpenseModelFailed"],
    }
    assert responses[1].outputs["alerts"] == [
        "ExpenseModelSuccessFastBurn",
        "ExpenseModelSuccessSlowBurn",
    ]
    for (address, doc), response in zip(documents, responses, strict=True):
        live = p.read(ReadRequest(_ctx(tmp_path, address), doc, response.outputs, address))
        assert live.exists and live.observed == response.observed


def test_applying_the_same_spec_again_does_not_rewrite_the_file(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    first = _create(p, address, doc)
    before = (p.path.read_bytes(), p.path.stat().st_mtime_ns)
    again = p.update(ApplyRequest(_ctx(tmp_path, address), doc, doc, first.outputs, address, {}))
    assert again.observed == first.observed
    assert (p.path.read_bytes(), p.path.stat().st_mtime_ns) == before


def test_a_hand_edited_group_reads_as_drift_and_an_update_restores_it(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    created = _create(p, address, doc)
    p.path.write_text(p.path.read_text().replace("== 0", "== 42"))
    live = p.read(ReadRequest(_ctx(tmp_path, address), doc, created.outputs, address))
    assert live.exists and live.observed != created.observed
    assert live.observed["rules"]["Failed"]["expr"].endswith("== 42")
    p.update(ApplyRequest(_ctx(tmp_path, address), doc, doc, created.outputs, address, {}))
    live = p.read(ReadRequest(_ctx(tmp_path, address), doc, created.outputs, address))
    assert live.observed == created.observed


def test_delete_removes_the_group_then_the_empty_file(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    documents = [
        alert("a", ALERT_TEMPLATES["training-failed"]),
        alert("b", ALERT_TEMPLATES["expr"]),
    ]
    for address, doc in documents:
        _create(p, address, doc)
    p.delete(DeleteRequest(_ctx(tmp_path, "Alert/a"), documents[0][1], {}, "Alert/a"))
    assert [g["name"] for g in yaml.safe_load(p.path.read_text())["groups"]] == ["Alert/b"]
    assert "Alert/a" not in p.path.read_text()  # its owner line went too
    p.delete(DeleteRequest(_ctx(tmp_path, "Alert/b"), documents[1][1], {}, "Alert/b"))
    assert not p.path.exists()
    p.delete(DeleteRequest(_ctx(tmp_path, "Alert/b"), documents[1][1], {}, "Alert/b"))


def test_threads_applying_at_once_lose_no_group(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    documents = [alert(f"a{i}", ALERT_TEMPLATES["training-failed"]) for i in range(12)]
    errors: list[BaseException] = []

    def create(address: str, doc: dict[str, Any]) -> None:
        try:
            _provider(tmp_path).create(  # one instance each, as separate providers would
                ApplyRequest(_ctx(tmp_path, address), doc, None, {}, None, {})
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=d) for d in documents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = sorted(g["name"] for g in yaml.safe_load(p.path.read_text())["groups"])
    assert names == sorted(a for a, _ in documents)
    assert not [f for f in p.rules_dir.iterdir() if f.name.endswith(".tmp")]


def test_promql_that_promtool_refuses_leaves_the_file_as_it_was(
    promtool: str, tmp_path: Path
) -> None:
    p = _provider(tmp_path)
    _create(p, *alert("good", ALERT_TEMPLATES["training-failed"]))
    before = p.path.read_bytes()
    address, doc = alert("bad", {"expr": "rate(x[5m]) >>> 1"})
    with pytest.raises(
        PermanentError,
        match="promtool refused the rules for "
        r"\.pipeform/rules/pipeform-quickstart\.rules\.yml",
    ):
        _create(p, address, doc)
    assert p.path.read_bytes() == before
    assert [f.name for f in p.rules_dir.iterdir()] == ["pipeform-quickstart.rules.yml"]


def test_a_group_owned_elsewhere_is_refused_until_imported(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    _create(p, address, doc, lineage=THEIRS)
    with pytest.raises(PermanentError, match="pipeform import Alert/failed Alert/failed"):
        _create(p, address, doc)
    imported = p.import_(ImportRequest(_ctx(tmp_path, address), address))
    assert imported.external_id == address and imported.observed["rules"]
    _create(p, address, doc)  # ours now: adopted
    assert f"lineage={OURS}" in p.path.read_text()


def test_a_hand_written_group_without_owner_is_never_taken_over(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    p.rules_dir.mkdir(parents=True)
    p.path.write_text(
        "groups:\n- name: Alert/failed\n  rules:\n  - alert: Mine\n    expr: up == 0\n"
    )
    with pytest.raises(PermanentError, match="nothing pipeform manages"):
        _create(p, *alert("failed", ALERT_TEMPLATES["training-failed"]))
    _create(p, *alert("other", ALERT_TEMPLATES["training-failed"]))
    names = [g["name"] for g in yaml.safe_load(p.path.read_text())["groups"]]
    assert names == ["Alert/failed", "Alert/other"]  # the hand-written group is kept


def test_validate_reports_a_custom_sli_without_the_window_placeholder(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    address, doc = slo("api", {"good": "sum(rate(ok[5m]))", "total": "sum(rate(all[{{window}}]))"})
    problems = p.validate(_ctx(tmp_path, address, ""), doc)
    assert len(problems) == 1
    assert "sli.good must contain {{window}}" in problems[0].message
    good_address, good = slo("ok", SLI_TEMPLATES["custom"])
    assert p.validate(_ctx(tmp_path, good_address, ""), good) == []


def test_a_prometheus_that_does_not_answer_is_a_retryable_error(tmp_path: Path) -> None:
    p = _provider(tmp_path, url="http://127.0.0.1:9")  # discard port: connection refused
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    with pytest.raises(RetryableError, match="could not be reached"):
        _create(p, address, doc)


def test_a_damaged_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    p.rules_dir.mkdir(parents=True)
    p.path.write_text("groups: [\n")
    address, doc = alert("failed", ALERT_TEMPLATES["training-failed"])
    with pytest.raises(PermanentError, match="is not valid YAML at line"):
        p.read(ReadRequest(_ctx(tmp_path, address), doc, {}, address))


def test_refresh_parses_the_rules_file_once_per_version_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.prometheus import rulesfile

    p = _provider(tmp_path)
    documents = [alert(f"a{i}", ALERT_TEMPLATES["training-failed"]) for i in range(5)]
    created = {address: _create(p, address, doc) for address, doc in documents}
    parses: list[str] = []
    real = rulesfile.parse
    monkeypatch.setattr(
        rulesfile, "parse", lambda text, shown: parses.append(shown) or real(text, shown)
    )

    def read_all() -> list[Any]:
        return [
            p.read(ReadRequest(_ctx(tmp_path, a), doc, created[a].outputs, a)).observed
            for a, doc in documents
        ]

    first = read_all()
    assert len(parses) == 1 and all(first)  # five groups, one parse
    assert read_all() == first and len(parses) == 1
    p.path.write_text(p.path.read_text().replace("== 0", "== 42"))  # a hand edit: a new version
    edited = read_all()
    assert len(parses) == 2
    assert all(any(rule["expr"].endswith("== 42") for rule in o["rules"].values()) for o in edited)
