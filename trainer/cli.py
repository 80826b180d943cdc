"""The command line: ``python -m trainer run --config FILE`` (and ``--version``, ``digest``).

Argument handling only: the config is read and validated here (a bad config is one line
on stderr and EXIT_FAILED), and the run itself is ``trainer.runner.run``, imported only
when there is something to run so that ``--help`` does not load torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from trainer.config import EXIT_FAILED, RunConfig, RunResult
from trainer.version import TRAINER_VERSION, trainer_code_digest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="pipeform's bundled PyTorch trainer: trains, evaluates, gates, packages "
        "and registers one model from a RunConfig JSON file.",
        epilog="Exit codes: 0 ok, 1 failed, 3 bad input (missing table or checksum mismatch), "
        "4 gated (a gate failed, nothing registered), 5 preempted (checkpoint saved; rerun "
        "to resume). PIPEFORM_DEBUG=1 prints tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"trainer {TRAINER_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="train one model from a config file",
        description="Train, evaluate, gate, package and register the model a RunConfig names; "
        "result.json lands in the config's output_dir on every exit path. Under torchrun "
        "it trains data-parallel.",
    )
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="RunConfig JSON")
    commands.add_parser("digest", help="print the trainer's version and code digest as JSON")
    return parser


def _config_error(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        problems = error.errors()
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return str(error)


def load_config(path: Path) -> tuple[RunConfig | None, str | None, dict[str, Any]]:
    """The config, or None and why not (with whatever of the raw JSON could be read)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"config file {path} does not exist", {}
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read config file {path}: {error}", {}
    except ValueError as error:
        return None, f"config file {path} is not valid JSON: {error}", {}
    if not isinstance(raw, dict):
        return None, f"config file {path} must hold a JSON object", {}
    try:
        return RunConfig.model_validate(raw), None, raw
    except ValueError as error:
        return None, f"config file {path}: {_config_error(error)}", raw


def _report_bad_config(raw: dict[str, Any], message: str) -> None:
    """A failed result.json when the broken config still names a run and an output dir."""
    run_id, output_dir = raw.get("run_id"), raw.get("output_dir")
    if not (isinstance(run_id, str) and isinstance(output_dir, str)):
        return
    from trainer.fsio import write_atomic

    result = RunResult(run_id=run_id, status="failed", error=message)
    with contextlib.suppress(OSError):
        write_atomic(
            Path(output_dir) / "result.json", (result.model_dump_json(indent=2) + "\n").encode()
        )
    termination = raw.get("termination_message_path")
    if isinstance(termination, str) and termination:
        from trainer.termination import write_message

        with contextlib.suppress(OSError):
            write_message(termination, result)


def main(argv: list[str] | None = None) -> int:
    from trainer.progress import process_started_at

    started = process_started_at()
    args = _parser().parse_args(argv)
    if args.command == "digest":
        print(json.dumps({"version": TRAINER_VERSION, "code_digest": trainer_code_digest()}))
        return 0
    config, problem, raw = load_config(args.config)
    if config is None:
        from trainer.redact import scrub

        message = scrub(problem or "bad config")
        print(f"trainer: error: {message}", file=sys.stderr)
        _report_bad_config(raw, message)
        return EXIT_FAILED
    from trainer.runner import run

    return run(config, started)
