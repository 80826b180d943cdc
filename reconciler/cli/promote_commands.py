"""Commands that move a registered model's alias: approve, rollback. Argument handling
only; the work is in reconciler.promotion."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli import PATHS, _paths, cli
from reconciler.cli.engine_commands import LOCK_TIMEOUT, _out, _print_notes, _seconds


def _move(
    paths: tuple[Path, ...],
    model: str,
    action: str,
    version: int | None,
    lock_timeout: str,
    command: str,
) -> int:
    from reconciler import engine, promotion

    session = engine.open_session(_paths(paths), access="existing")
    with engine.locked(session.backend, _seconds(lock_timeout), command) as notes:
        _print_notes(notes)
        moved, serial = promotion.move(
            session.backend, session.providers, session.root, model, action, version, command
        )
    before = f"v{moved.before}" if moved.before is not None else "no version"
    _out().print(
        f"{moved.model}: alias {moved.alias} moved from {before} to v{moved.after}. "
        f"State saved (serial {serial})."
    )
    return 0


@cli.command()
@click.argument("ref", metavar="MODEL@VERSION")
@PATHS
@LOCK_TIMEOUT
def approve(ref: str, paths: tuple[Path, ...], lock_timeout: str) -> int:
    """Approve MODEL@VERSION: move the TrainingJob's register.alias to that version.

    For jobs with register.approval: required, whose new versions wait (plan lists
    them). The move is journalled with who made it (pipeform history).
    """
    from reconciler.promotion import parse_ref

    model, version = parse_ref(ref)
    return _move(paths, model, "approve", version, lock_timeout, f"pipeform approve {ref}")


@cli.command()
@click.argument("model")
@PATHS
@click.option(
    "--to",
    "to_version",
    type=click.IntRange(min=1),
    metavar="VERSION",
    help="The version the alias moves to. Default: the version it named before.",
)
@LOCK_TIMEOUT
def rollback(model: str, paths: tuple[Path, ...], to_version: int | None, lock_timeout: str) -> int:
    """Move MODEL's alias back: to the version it named before, or to --to VERSION.

    Rolling back again goes further back. The move is journalled with who made it
    (pipeform history); the next apply does not move the alias forward again unless
    the job trains a new version.
    """
    command = f"pipeform rollback {model}" + (f" --to {to_version}" if to_version else "")
    return _move(paths, model, "rollback", to_version, lock_timeout, command)
