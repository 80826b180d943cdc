"""The bad-input corpus: every malformed spec fails cleanly, at the right place, quickly.

Each file in corpus/ is one mistake, validated on its own with the real command line
(``pipeform validate FILE``). For every file the user must get exit code 1, a line
``file:line:col: ...`` naming the file and the line of the mistake with the right
message, no traceback, and all of it within 2 seconds. Files too large to commit (50 MB,
a 2 GB sparse file, ten thousand documents) are made at test time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
PIPEFORM = Path(sys.executable).with_name("pipeform")
TIME_LIMIT_S = 2.0

# file name -> (line of the mistake, text the diagnostic on that line must contain)
EXPECTED: dict[str, tuple[int, str]] = {
    # YAML syntax and encoding
    "syntax-bad-indent.yaml": (5, "did not find expected key"),
    "syntax-mapping-in-scalar.yaml": (6, "mapping values are not allowed"),
    "syntax-unclosed-flow-mapping.yaml": (4, "did not find expected ',' or '}'"),
    "syntax-unclosed-flow-sequence.yaml": (6, "did not find expected ',' or ']'"),
    "syntax-unclosed-quote.yaml": (4, "the quoted string starting here is never closed"),
    "tab-indent.yaml": (4, "a tab character is used for indentation"),
    "control-character.yaml": (3, "control characters are not allowed"),
    "non-utf8-latin1.yaml": (5, "not valid UTF-8 (byte 0xe9)"),
    "utf16-bom.yaml": (1, "file is UTF-16 encoded"),
    "binary-png.yaml": (3, "binary file, not YAML text"),
    "empty.yaml": (1, "file holds no documents"),
    "only-comments.yaml": (1, "file holds no documents"),
    "only-separators.yaml": (1, "file holds no documents"),
    "document-is-list.yaml": (
        1,
        "a document must be a mapping with apiVersion, kind, metadata and spec, not a list",
    ),
    "document-is-scalar.yaml": (1, "not 'just some text'"),
    # keys, tags, anchors and aliases
    "duplicate-key.yaml": (7, "duplicate key 'cpu' (first at line 5)"),
    "duplicate-key-top-level.yaml": (4, "duplicate key 'kind' (first at line 2)"),
    "complex-key.yaml": (5, "mapping keys must be plain text"),
    "merge-key-not-mapping.yaml": (5, "a merge key (<<) takes a mapping or a list of mappings"),
    "python-tag.yaml": (5, "tag !!python/object/apply:os.system is not allowed"),
    "custom-tag.yaml": (5, "tag !Ref is not allowed"),
    "binary-tag.yaml": (5, "tag !!binary is not allowed"),
    "set-tag.yaml": (4, "tag !!set is not allowed"),
    "explicit-int-tag.yaml": (5, "'four' is not a valid !!int"),
    "undefined-alias.yaml": (5, "alias *cores has no anchor &cores before it"),
    "recursive-alias.yaml": (6, "alias *loop is used inside the value of its own anchor &loop"),
    "duplicate-anchor.yaml": (6, "anchor &n is defined twice (first at line 5)"),
    "billion-laughs.yaml": (6, "document expands to more than 100,000 values"),
    "billion-laughs-across-documents.yaml": (19, "file expands to more than 200,000 values"),
    "deep-nesting.yaml": (5, "nesting deeper than 64 levels"),
    # the document header
    "unknown-kind.yaml": (2, "kind 'TrainingJobs' is not known (did you mean TrainingJob?)"),
    "kind-lower-case.yaml": (2, "kind 'quota' is not known (did you mean Quota?)"),
    "missing-kind.yaml": (1, "kind is missing"),
    "kind-is-mapping.yaml": (2, "kind must be the name of a kind, not a mapping"),
    "wrong-api-version.yaml": (1, "apiVersion 'pipeform/v2' is not supported"),
    "kubernetes-api-version.yaml": (1, "apiVersion 'batch/v1' is not supported"),
    "missing-api-version.yaml": (1, "apiVersion is missing"),
    "prometheus-rule-file.yaml": (2, "this is a Prometheus rule file, not a pipeform document"),
    "missing-metadata.yaml": (1, "metadata is required"),
    "missing-metadata-name.yaml": (3, "metadata.name is required"),
    "missing-spec.yaml": (1, "spec is required"),
    "name-upper-case.yaml": (3, "'TeamA' is not a valid name"),
    "name-underscore.yaml": (3, "'team_a' is not a valid name"),
    "name-too-long.yaml": (3, "is 64 characters long; names have at most 63"),
    "name-empty.yaml": (3, "'' is not a valid name"),
    "name-is-number.yaml": (
        3,
        'metadata.name: input should be a valid string (got 42) (put it in quotes ("42")',
    ),
    "name-yes-boolean.yaml": (
        3,
        "YAML reads unquoted yes, no, on, off, true and false as booleans",
    ),
    "bad-label-value.yaml": (5, "label value 'growth team!' is invalid"),
    "label-value-norway.yaml": (
        5,
        "metadata.labels.country: input should be a valid string (got false)",
    ),
    "bad-depends-on-format.yaml": (
        5,
        "metadata.dependsOn[0]: 'team-b' is not in the expected form (write Kind/name",
    ),
    "metadata-unknown-field.yaml": (
        5,
        "metadata.lables is not a known field (did you mean labels?)",
    ),
    "ignore-changes-unknown-field.yaml": (
        5,
        "'cpus' is not a field of the Quota spec (did you mean cpu?)",
    ),
    # fields, types and enums
    "unknown-field-near-miss.yaml": (
        7,
        "spec.hyperparamters is not a known field (did you mean hyperparameters?)",
    ),
    "unknown-field-nested.yaml": (
        9,
        "spec.hyperparameters.batchsize is not a known field (did you mean batchSize?)",
    ),
    "unknown-field-top-level.yaml": (4, "specs is not a known field (did you mean spec?)"),
    "missing-required-field.yaml": (4, "spec.model is required"),
    "wrong-type-int.yaml": (8, "spec.hyperparameters.epochs: input should be a valid integer"),
    "wrong-type-list.yaml": (9, "spec.model.hidden: input should be a valid list (got 64)"),
    "wrong-type-bool.yaml": (6, "spec.enforce: input should be a valid boolean"),
    "wrong-type-spec.yaml": (4, "spec: input should be a mapping (got a list)"),
    "out-of-range.yaml": (8, "spec.hyperparameters.learningRate: input should be greater than 0"),
    "unknown-enum-task.yaml": (8, "'classification' is not allowed"),
    "unknown-model-type.yaml": (7, "'transformer' is not allowed"),
    "unknown-transform.yaml": (9, "'normalise' is not a known type"),
    "unknown-split-type.yaml": (9, "'kfold' is not a known type"),
    "workspace-unknown-backend.yaml": (5, "'mysql' is not a known type"),
    # units
    "bad-duration-words.yaml": (7, "spec.maxDuration: '10 minutes' is not a duration"),
    "bad-duration-bare-number.yaml": (7, "spec.maxDuration: 600 is not a duration"),
    "bad-memory-gb.yaml": (9, "spec.resources.memory: '4GB' is not a quantity"),
    "bad-memory-millibytes.yaml": (5, "'512m' means milli-bytes"),
    "bad-cpu-gi.yaml": (8, "'2Gi' is a memory size, not a CPU amount"),
    "negative-cpu.yaml": (5, "spec.cpu: -2 is negative"),
    "bad-money-words.yaml": (5, "'100 dollars' is not an amount of money"),
    "bad-money-european.yaml": (5, "'1.000,50' is not an amount of money"),
    "bad-money-decimals.yaml": (5, "99.999 has more than 2 decimal places"),
    "bad-currency.yaml": (6, "'dollars' is not an ISO 4217 currency code"),
    # hostile numbers: each once ended in an internal error, or passed validate and crashed plan
    "huge-integer.yaml": (6, "(5,000 characters) is too large for an integer"),
    "huge-hex-integer.yaml": (5, "(5,002 characters) is too large for an integer"),
    "budget-amount-overflow.yaml": (5, "1.0e+309 is too large for a number"),
    "budget-amount-infinite.yaml": (5, "spec.amount: .inf is not an amount of money"),
    "budget-amount-nan.yaml": (5, "spec.amount: .nan is not an amount of money"),
    "budget-amount-30-digits.yaml": (5, "is too large; amounts are below 1,000,000,000,000,000"),
    "price-overflow.yaml": (6, "1.0e+309 is too large for a number"),
    "price-nan.yaml": (7, "spec.pricing.memoryGiBHour: .nan is not an amount of money"),
    "price-30-digits.yaml": (
        6,
        "spec.pricing.gpuHour.h100: '123456789012345678901234567890' is too large",
    ),
    "duration-400-digits.yaml": (7, "(403 characters) is longer than 521w3d (3650d"),
    "checkpoint-every-400-digits.yaml": (8, "spec.checkpoint.every: '999"),
    "alert-for-400-digits.yaml": (6, "spec.for: '999"),
    "slo-window-400-digits.yaml": (7, "spec.window: '999"),
    "duration-over-ten-years.yaml": (7, "'3651d' is longer than 521w3d (3650d, about ten years)"),
    "cpu-400-digits.yaml": (5, "is more than 1,000,000 cores"),
    "memory-400-digits.yaml": (6, "is more than 1Ei (2^60 bytes)"),
    "cpu-infinite.yaml": (5, "spec.cpu: .inf is not a quantity"),
    "column-regex-overflow.yaml": (
        7,
        "regex 'a{99999999999999999999}' does not compile: the repetition number is too large",
    ),
    "column-regex-over-re2-limit.yaml": (7, "nested repetitions multiply to more than 1000"),
    "column-regex-lookahead.yaml": (7, "it uses a look-ahead or look-behind"),
    "gate-min-nan.yaml": (8, "spec.gates[0].min: input should be a finite number (got .nan)"),
    "column-max-infinite.yaml": (
        7,
        "spec.schema[0].max: input should be a finite number (got .inf)",
    ),
    # rules inside one document
    "gate-metric-wrong-task.yaml": (
        8,
        "gate metric 'rmse' does not exist for binary-classification",
    ),
    "gate-without-bound.yaml": (8, "gate on 'auc' needs min or max"),
    "gpu-type-without-gpus.yaml": (7, "gpuType 'h100' is set but gpus is 0"),
    "secret-inline-value.yaml": (5, "secret values may not be written in specs"),
    "secret-no-source.yaml": (5, "spec.from needs one of: env, file, awsSecretsManager"),
    "env-plain-string.yaml": (8, "spec.env.LOG_LEVEL needs one of: secret, value"),
    "bad-uri-scheme.yaml": (6, "'https://example.com/events.csv' has no supported scheme"),
    "column-declared-twice.yaml": (8, "column 'id' is declared twice"),
    "bad-column-regex.yaml": (7, "regex '[a-z+' does not compile"),
    "quota-without-limit.yaml": (4, "a Quota needs at least one limit"),
    "alert-template-and-expr.yaml": (
        4,
        "an Alert needs exactly one of template, expr or cloudwatch",
    ),
    "promql-unbalanced.yaml": (5, "unclosed '(' in PromQL expression"),
    "slo-window-too-short.yaml": (7, "an SLO window shorter than 1h"),
    "slo-objective-percent.yaml": (6, "spec.objective: input should be less than 100"),
    # across documents: references, cycles, duplicates, columns
    "dangling-feature-ref.yaml": (
        10,
        "spec.features refers to FeatureSet/churn-features, which does not exist",
    ),
    "dangling-dataset-ref.yaml": (
        10,
        "refers to Dataset/event, which does not exist (did you mean Dataset/events?)",
    ),
    "dangling-secret-ref.yaml": (18, "refers to Secret/wandb-key, which does not exist"),
    "dangling-budget-ref.yaml": (
        10,
        "spec.template.budget refers to Budget/monthly, which does not exist",
    ),
    "dangling-depends-on.yaml": (
        5,
        "metadata.dependsOn[0] refers to Secret/db-password, which does not exist",
    ),
    "cycle-depends-on.yaml": (1, "dependency cycle: Quota/team-a -> Secret/token -> Quota/team-a"),
    "cycle-self.yaml": (1, "dependency cycle: Quota/team-a -> Quota/team-a"),
    "duplicate-address.yaml": (8, "duplicate address Quota/team-a"),
    "two-workspaces.yaml": (5, "a second Workspace document"),
    "column-not-in-schema.yaml": (
        20,
        "reads column 'income', which Dataset/events does not declare",
    ),
}

# Right error, wrong line: none at present. An entry here marks a case as a known
# misplacement (strict xfail), so fixing it flags the entry for removal.
MISPLACED: dict[str, str] = {}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def pipeform(*args: str, cwd: Path = ROOT, timeout: float = 30) -> Run:
    """The real console script, as a user runs it, without colour."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    start = time.perf_counter()
    done = subprocess.run(
        [str(PIPEFORM), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)


def display(path: Path) -> str:
    """How pipeform names a corpus file when run from the repository root."""
    return path.relative_to(ROOT).as_posix()


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml"))


@pytest.fixture(scope="session")
def corpus_runs() -> dict[str, Run]:
    """Every corpus file validated on its own, as many at once as there are CPUs.

    No more processes than CPUs, so that each one's wall time is its own, not a queue's.
    """
    files = corpus_files()
    workers = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    )
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        runs = list(pool.map(lambda p: pipeform("validate", display(p)), files))
    return {p.name: run for p, run in zip(files, runs, strict=True)}


def diagnostic_line(run: Run, where: str, text: str) -> str | None:
    """The stderr line that starts at ``where`` and contains ``text``."""
    return next(
        (line for line in run.stderr.splitlines() if line.startswith(where) and text in line), None
    )


def assert_clean_failure(run: Run, name: str) -> None:
    assert run.returncode == 1, f"{name}: exit code {run.returncode}\n{run.output}"
    assert "Traceback" not in run.output, f"{name}: a traceback\n{run.output}"
    assert "unexpected internal error" not in run.output, f"{name}: an internal error\n{run.output}"
    assert run.seconds < TIME_LIMIT_S, f"{name}: took {run.seconds:.2f}s"


def test_the_corpus_has_at_least_40_files() -> None:
    assert len(corpus_files()) >= 40


def test_every_corpus_file_has_an_expectation_and_every_expectation_a_file() -> None:
    names = {p.name for p in corpus_files()}
    assert names - set(EXPECTED) == set(), "add these files to EXPECTED"
    assert set(EXPECTED) - names == set(), "these EXPECTED files are missing from corpus/"
    assert set(MISPLACED) <= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fails_cleanly_naming_the_file(name: str, corpus_runs: dict[str, Run]) -> None:
    run = corpus_runs[name]
    assert_clean_failure(run, name)
    assert f"{display(CORPUS / name)}:" in run.stderr, run.stderr
    assert "error" in run.stderr.splitlines()[-1], "the last line sums up the errors"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=MISPLACED[n], strict=True))
        if n in MISPLACED
        else n
        for n in sorted(EXPECTED)
    ],
)
def test_reports_the_right_error_at_the_right_line(name: str, corpus_runs: dict[str, Run]) -> None:
    line, text = EXPECTED[name]
    where = f"{display(CORPUS / name)}:{line}:"
    found = diagnostic_line(corpus_runs[name], where, text)
    assert found, (
        f"expected a line starting {where!r} containing {text!r}; got:\n{corpus_runs[name].stderr}"
    )


def test_the_whole_corpus_at_once_reports_every_file() -> None:
    run = pipeform("validate", display(CORPUS), timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.output
    named = {line.split(":", 1)[0] for line in run.stderr.splitlines() if line.startswith("tests/")}
    # Files validated together can satisfy each other's references, so not every file's
    # own error shows; but one run must reach (nearly) all of them, not stop at the first.
    assert len(named) >= len(EXPECTED) - 10, sorted(set(map(display, corpus_files())) - named)
    for name in (
        "tab-indent.yaml",
        "billion-laughs.yaml",
        "non-utf8-latin1.yaml",
        "unknown-kind.yaml",
        "bad-memory-gb.yaml",
        "duplicate-key.yaml",
    ):
        line, text = EXPECTED[name]
        assert diagnostic_line(run, f"{display(CORPUS / name)}:{line}:", text), name
    summary = re.fullmatch(r"(\d+) errors in (\d+) files\.", run.stderr.strip().splitlines()[-1])
    assert summary and int(summary[2]) >= len(EXPECTED) - 10, run.stderr.splitlines()[-1]


def test_json_output_is_valid_with_a_range() -> None:
    run = pipeform("validate", "--json", display(CORPUS / "bad-memory-gb.yaml"))
    assert_clean_failure(run, "--json")
    body = json.loads(run.stdout)
    assert body["valid"] is False and body["error_count"] >= 1
    [diag] = [d for d in body["diagnostics"] if "'4GB' is not a quantity" in d["summary"]]
    assert diag["severity"] == "error"
    assert diag["range"]["filename"] == display(CORPUS / "bad-memory-gb.yaml")
    assert diag["range"]["start"]["line"] == 9
    assert diag["address"] == "TrainingJob/churn" and diag["path"] == "spec.resources.memory"


def test_json_output_for_a_file_that_is_not_yaml() -> None:
    run = pipeform("validate", "--json", display(CORPUS / "binary-png.yaml"))
    assert_clean_failure(run, "--json binary")
    body = json.loads(run.stdout)
    assert body["valid"] is False
    assert body["diagnostics"][0]["range"]["start"]["line"] == 3


def test_json_output_for_a_5000_digit_integer() -> None:
    """Once an internal error that left stdout empty: tools reading --json got nothing."""
    run = pipeform("validate", "--json", display(CORPUS / "huge-integer.yaml"))
    assert_clean_failure(run, "--json huge integer")
    body = json.loads(run.stdout)
    assert body["valid"] is False and body["error_count"] == 1
    [diag] = body["diagnostics"]
    assert "too large for an integer" in diag["summary"]
    assert diag["range"]["start"] == {"line": 6, "column": 19}


# --- files made at test time ---------------------------------------------------------


def test_a_50_mb_file_is_refused_by_its_size(tmp_path: Path) -> None:
    quota = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: team-a}\nspec: {cpu: 4}\n---\n"
    with (tmp_path / "huge.yaml").open("w") as out:
        for _ in range(50 * 2**20 // (len(quota) * 1000) + 1):
            out.write(quota * 1000)
    assert (tmp_path / "huge.yaml").stat().st_size >= 50 * 2**20
    run = pipeform("validate", "huge.yaml", cwd=tmp_path)
    assert_clean_failure(run, "huge.yaml")
    assert diagnostic_line(run, "huge.yaml:1:", "spec files may be at most 8 MiB"), run.stderr


def test_a_2_gb_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.yaml"
    sparse.touch()
    os.truncate(sparse, 2 * 2**30)
    run = pipeform("validate", "sparse.yaml", cwd=tmp_path)
    assert_clean_failure(run, "sparse.yaml")
    assert diagnostic_line(run, "sparse.yaml:1:", "file is 2048.0 MiB"), run.stderr


def test_too_many_documents_in_one_file(tmp_path: Path) -> None:
    quota = "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: team-a}\nspec: {cpu: 4}\n"
    (tmp_path / "many.yaml").write_text(quota + "---\n" * 10_001)
    run = pipeform("validate", "many.yaml", cwd=tmp_path)
    assert_clean_failure(run, "many.yaml")
    assert diagnostic_line(run, "many.yaml:10004:", "more than 10,000 documents in one file"), (
        run.stderr
    )


def test_one_huge_document_stops_at_the_value_limit(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n" * (2 * 2**20 - 16))  # 8 MiB: two million values
    run = pipeform("validate", "list.yaml", cwd=tmp_path)
    assert_clean_failure(run, "list.yaml")
    assert diagnostic_line(run, "list.yaml:100000:", "document holds more than 100,000 values"), (
        run.stderr
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_device_named_yaml_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait forever
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "ok.yaml").write_text(
        "apiVersion: pipeform/v1\nkind: Quota\nmetadata: {name: q}\nspec: {cpu: 1}\n"
    )
    run = pipeform("validate", ".", cwd=tmp_path, timeout=10)
    assert_clean_failure(run, "pipe and device")
    for name in ("pipe.yaml", "zero.yaml"):
        assert diagnostic_line(run, f"{name}:1:", "not a regular file"), run.stderr
