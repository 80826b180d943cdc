"""OpenLineage run events from apply (docs/audit.md): START then COMPLETE per snapshot,
materialisation and training run, FAIL for a failing one, posted to a receiver started
here on 127.0.0.1 and appended to a file, each valid against the OpenLineage schema."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import CopyExample
from tests.training import quickstart

BODY_MARKER = "receiver-body-91c2-do-not-print"
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "format": "uri"},
        "_schemaURL": {"type": "string", "format": "uri"},
    },
}
FACETS = {"type": "object", "additionalProperties": FACET}
DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "facets": FACETS,
        "inputFacets": FACETS,
        "outputFacets": FACETS,
    },
}
# The RunEvent of the OpenLineage 2-0-2 spec (openlineage.io/spec/2-0-2/OpenLineage.json),
# for the fields pipeform emits: the client package does not ship the schema file.
RUN_EVENT = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "eventType", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {
            "const": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        },
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "pattern": UUID}, "facets": FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "facets": FACETS,
            },
        },
        "inputs": {"type": "array", "items": DATASET},
        "outputs": {"type": "array", "items": DATASET},
    },
}
SNAPSHOT, FEATURES, JOB = "Dataset/rand-hie", "FeatureSet/hie-features", "TrainingJob/expense-model"


def valid(event: dict[str, Any]) -> dict[str, Any]:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.Draft202012Validator(RUN_EVENT, format_checker=checker).validate(event)
    return event


class Receiver(http.server.BaseHTTPRequestHandler):
    events: list[dict[str, Any]]
    status: int

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.events.append(json.loads(body))
        answer = f"{BODY_MARKER}: the password is hunter2".encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    status = getattr(request, "param", 201)
    handler = type("Handler", (Receiver,), {"events": events, "status": status})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/lineage", events
    finally:
        httpd.shutdown()
        httpd.server_close()


def tree(copy_example: CopyExample, url: str) -> Path:
    root = copy_example("quickstart")
    with (root / "pipeform.yaml").open("a") as workspace:
        workspace.write(f"  lineage:\n    file: .pipeform/lineage.jsonl\n    url: '{url}'\n")
    return root


def by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        found.setdefault(event["job"]["name"], []).append(valid(event))
    return found


def names(datasets: list[dict[str, Any]]) -> list[str]:
    return [f"{d['namespace']} {d['name']}" for d in datasets]


def test_apply_posts_start_then_complete_with_datasets_for_each_data_change(
    copy_example: CopyExample, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = receiver
    root = tree(copy_example, url)
    quickstart.apply(root)
    jobs = by_job(posted)
    assert set(jobs) == {SNAPSHOT, FEATURES, JOB}, "only data, features and training are runs"
    for address, events in jobs.items():
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], address
        assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
        assert events[1]["job"]["namespace"] == "quickstart"
        facets = events[1]["run"]["facets"]
        assert facets["processing_engine"]["name"] == "pipeform"
        assert facets["pipeform"]["address"] == address
    snapshot = jobs[SNAPSHOT][1]
    assert names(snapshot["inputs"]) == ["file data/randhie.csv"]
    [out] = snapshot["outputs"]
    assert out["name"].startswith("snapshots/rand-hie/ds-")
    columns = {f["name"]: f.get("type") for f in out["facets"]["schema"]["fields"]}
    assert columns["xage"] == "float" and "binexp" in columns
    features = jobs[FEATURES][1]
    assert names(features["inputs"]) == [f"pipeform://quickstart {out['name']}"]
    [table] = features["outputs"]
    assert table["name"].startswith("features/hie-features/fs-")
    assert {"age", "binexp"} <= {f["name"] for f in table["facets"]["schema"]["fields"]}
    training = jobs[JOB][1]
    assert names(training["inputs"]) == [f"pipeform://quickstart {table['name']}"]
    assert names(training["outputs"]) == ["pipeform://quickstart models/expense-model/v1"]
    # the file sink holds the same events, one JSON object a line
    lines = (root / ".pipeform" / "lineage.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == posted
    # the next change to the same resource is a new run
    quickstart.pipeform(root, "apply", "--auto-approve", "--replace", JOB)
    again = by_job(posted[len(lines) :])[JOB]
    assert again[0]["run"]["runId"] != training["run"]["runId"]


def test_a_dataset_failing_validation_sends_fail_and_nothing_downstream_runs(
    copy_example: CopyExample, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = receiver
    root = tree(copy_example, url)
    data = root / "data.yaml"
    data.write_text(data.read_text().replace("minRows: 20000", "minRows: 900000"))
    quickstart.apply(root, expect=1)
    jobs = by_job(posted)
    assert set(jobs) == {SNAPSHOT}, "skipped changes never started, so they are not runs"
    start, fail = jobs[SNAPSHOT]
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert start["run"]["runId"] == fail["run"]["runId"]
    assert "900000" in fail["run"]["facets"]["errorMessage"]["message"].replace(",", "")
    assert fail["outputs"] == [], "a failed snapshot is no dataset"


@pytest.mark.parametrize("receiver", [500], indirect=True)
def test_a_failing_receiver_is_a_warning_and_its_body_is_never_printed(
    copy_example: CopyExample, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = receiver
    root = tree(copy_example, url)
    result = quickstart.apply(root)  # exit 0: lineage never fails an apply
    output = result.stdout + result.stderr
    assert "refused an event: HTTP 500" in output
    assert BODY_MARKER not in output and "hunter2" not in output
    assert len(posted) == 6
    assert len((root / ".pipeform" / "lineage.jsonl").read_text().splitlines()) == 6
