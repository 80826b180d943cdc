"""State inspection and repair commands: state list|show|rm|versions|restore, force-unlock,
history. Inspecting opens the state read-only and never creates one; repairing opens an
existing state only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli import cli
from reconciler.cli.engine_commands import LOCK_TIMEOUT, _out, _seconds
from reconciler.diagnostics import PipeformError

if TYPE_CHECKING:
    from reconciler.state.journal import ApplyRecord

CHDIR = click.option(
    "-C",
    "--dir",
    "root",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The spec tree whose state to use.",
)


@cli.group()
def state() -> None:
    """Inspect and repair the state."""


@state.command("list")
@CHDIR
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def state_list(root: Path, as_json: bool) -> int:
    """List managed resources: address, status, last change."""
    from reconciler.engine import open_state

    current = open_state(root).read()
    rows = [
        {
            "address": r.address,
            "status": r.status.value,
            "provider": r.provider,
            "updated_at": r.updated_at,
        }
        for r in current.resources.values()
    ]
    if as_json:
        click.echo(
            json.dumps(
                {"lineage": current.lineage, "serial": current.serial, "resources": rows}, indent=2
            )
        )
        return 0
    for row in rows:
        click.echo(
            f"{row['address']:<48} {row['status']:<8} {row['provider']:<10} {row['updated_at'][:19]}"
        )
    return 0


@state.command("show")
@click.argument("address")
@CHDIR
def state_show(address: str, root: Path) -> int:
    """Print what state records for ADDRESS (spec as applied, outputs, status)."""
    from reconciler.diagnostics import suggestion
    from reconciler.engine import open_state

    current = open_state(root).read()
    resource = current.resources.get(address)
    if resource is None:
        raise PipeformError(
            f"{address} is not in the state "
            f"({suggestion(address, current.resources) or 'see pipeform state list'})"
        )
    click.echo(json.dumps(resource.to_dict(), indent=2, sort_keys=True))
    return 0


@state.command("rm")
@click.argument("addresses", nargs=-1, required=True)
@CHDIR
@LOCK_TIMEOUT
def state_rm(addresses: tuple[str, ...], root: Path, lock_timeout: str) -> int:
    """Forget ADDRESSES without destroying them (they stay live, unmanaged)."""
    from reconciler.engine import locked, open_state

    backend = open_state(root, "existing")
    with locked(backend, _seconds(lock_timeout)):
        current = backend.read()
        missing = [a for a in addresses if a not in current.resources]
        if missing:
            raise PipeformError(f"not in the state: {', '.join(missing)}; nothing was removed")
        serial = current.serial
        for address in addresses:
            serial = backend.remove(serial, address)
            _out().print(f"Removed {address} from the state (the object itself is untouched).")
    _out().print(f"State saved (serial {serial}).")
    return 0


@state.command("versions")
@CHDIR
@click.option("--limit", default=50, show_default=True)
def state_versions(root: Path, limit: int) -> int:
    """List the kept state versions: each write's serial, time and resource."""
    from reconciler.engine import open_state

    for version in open_state(root).versions(limit):
        click.echo(version.describe())
    return 0


@state.command("restore")
@click.argument("serial", type=click.IntRange(min=0))
@CHDIR
@click.option(
    "--lineage",
    help="The lineage of a state that lost it (from an object's pipeform.dev/lineage label).",
)
@LOCK_TIMEOUT
def state_restore(serial: int, root: Path, lineage: str | None, lock_timeout: str) -> int:
    """Make the state what it was at SERIAL (see state versions), as one new version.

    The live objects are not touched: run pipeform plan afterwards to see how they differ.
    Also rebuilds a damaged state (unreadable records, a bad serial, a missing table).
    """
    from reconciler import recovery
    from reconciler.engine import locked, open_state

    backend = open_state(root, "existing")
    with locked(backend, _seconds(lock_timeout)):
        restored = recovery.restore(backend, serial, lineage)
    counts = {
        what: list(restored.changes.values()).count(what)
        for what in ("added", "changed", "removed")
    }
    _out().print(
        f"Restored the state as at serial {serial}: {restored.resources} resources "
        f"({counts['added']} added, {counts['changed']} changed, {counts['removed']} removed). "
        f"State saved (serial {restored.serial}). The live objects are untouched: run "
        "pipeform plan to see how they differ."
    )
    return 0


@state.command("migrate")
@click.option(
    "--to",
    "target_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A YAML file holding the target's state block (as in a Workspace: state: {backend: ...}).",
)
@CHDIR
@LOCK_TIMEOUT
def state_migrate(target_file: Path, root: Path, lock_timeout: str) -> int:
    """Copy the state, every kept version and the journal to another backend.

    Lineage and serial are kept; a target holding a state of another lineage is refused.
    Both states are locked while it copies. The source is left as it was: point the
    Workspace's spec.state at the target afterwards (the same block as FILE).
    """
    from reconciler import recovery
    from reconciler.engine import open_state
    from reconciler.spec.trust import Trust
    from reconciler.state import open_backend

    if Trust.resolve().untrusted:
        raise PipeformError(
            "state migrate is not for untrusted runs: run it where the specs are trusted"
        )
    block = recovery.read_state_block(target_file)
    source = open_state(root, "existing")
    target = open_backend(block, root.resolve(), "create")
    try:
        copied = recovery.migrate(source, target, _seconds(lock_timeout))
    finally:
        target.close()
        source.close()
    _out().print(
        f"Copied the state (lineage {copied.lineage}, serial {copied.serial}, "
        f"{copied.resources} resources, {copied.versions} versions, {copied.journal} journal "
        f"entries) from {source.describe()} to {target.describe()}.\n"
        f"Point spec.state in the Workspace at it (the block in {target_file}); the old "
        "state is left as it was."
    )
    return 0


@cli.command("force-unlock")
@click.argument("lock_id", metavar="ID")
@CHDIR
@click.option(
    "--force", is_flag=True, help="Release it even though its process still runs on this host."
)
def force_unlock(lock_id: str, root: Path, force: bool) -> int:
    """Release the state lock ID left by a process that is gone. Use with care.

    A lock whose process still runs on this host is released only with --force; a lock
    whose record is damaged is released by its id.
    """
    from reconciler.engine import open_state
    from reconciler.state.backend import LockDamaged

    backend = open_state(root, "existing")
    try:
        holder, current = backend.lock_holder(), None
    except LockDamaged as exc:
        holder, current = None, exc.lock_id
    current = current or (holder.id if holder else None)
    if current != lock_id:
        shown = f"the current lock is {current}" if current else "the state is not locked"
        raise PipeformError(f"no lock with id {lock_id} ({shown})")
    if holder is not None and holder.holder_is_alive():
        alive = f"{holder.describe()}, and process {holder.pid} still runs on this host"
        if not force:
            raise PipeformError(
                f"{alive}: releasing its lock lets another command write the state while it "
                "works.\n  Wait for it or stop it; if you are sure it no longer uses the "
                f"state (it hangs), run again with --force: pipeform force-unlock --force {lock_id}"
            )
        _out(stderr=True).print(f"warning: {alive}; releasing its lock anyway (--force).")
    backend.force_unlock(lock_id)
    _out().print(f"Released {holder.describe() if holder else f'the damaged lock {lock_id}'}.")
    return 0


@cli.command()
@click.argument("address", required=False)
@CHDIR
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show the newest N applies (each with all its changes).",
)
@click.option(
    "--since",
    metavar="DATE",
    help="Only applies started at or after DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON: one object per apply.")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the journal's hash chain instead: exit 1 when an entry was edited or deleted.",
)
def history(
    address: str | None, root: Path, limit: int, since: str | None, as_json: bool, verify: bool
) -> int:
    """The journal of applies: who, when, which spec commit, what changed.

    One entry per apply, destroy or refresh, oldest first, with its changes under it; an
    apply that was killed before it ended shows the results it recorded. The spec commit
    ends in -dirty when the specs had uncommitted changes. With ADDRESS, only the applies
    that changed it (and only its changes). Each journal entry holds the hash of the one
    before it: --verify walks that chain and names every edited or deleted entry.
    """
    from reconciler.audit.history import filtered, parse_since
    from reconciler.engine import open_state
    from reconciler.state.journal import applies

    after = parse_since(since) if since else None
    backend = open_state(root)
    if verify:
        return _verify_chain(backend, as_json)
    if address is None and after is None:
        records = applies(backend.journal, limit)
    else:
        records = filtered(backend, address, after, limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    for record in records:
        for line in _history_lines(record):
            click.echo(line)
    return 0


def _verify_chain(backend: Any, as_json: bool) -> int:
    report = backend.verify_journal()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return 0 if report.intact else 1
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    chained = report.rows - report.unchained
    note = (
        f" ({report.unchained} older entries predate the chain: unchained, not checked)"
        if report.unchained
        else ""
    )
    if report.intact:
        click.echo(f"Journal intact: {chained} chained entries verified{note}.")
        if report.head:
            click.echo(f"Head: {report.head} (record it elsewhere to pin the journal to now)")
        return 0
    click.echo(
        f"Journal NOT intact: {len(report.problems)} problem(s) in {report.rows} entries{note}."
    )
    return 1


def commit_text(commit: str | None) -> str:
    """A spec commit, shortened to 12 characters, keeping its -dirty mark."""
    if not commit:
        return "-"
    clean = commit.removesuffix("-dirty")
    return clean[:12] + commit[len(clean) :]


def _history_lines(record: ApplyRecord) -> list[str]:
    counts = [
        f"{n} {status}"
        for status in ("succeeded", "failed", "skipped")
        if (n := record.count(status))
    ]
    changes = f"{len(record.changes)} change{'s' if len(record.changes) != 1 else ''}"
    outcome = (
        f"{changes}: {', '.join(counts)}"
        if record.finished_at is not None
        else "INTERRUPTED: results recorded before it stopped"
    )
    when = record.finished_at or record.started_at
    lines = [
        f"{when[:19]}  {record.who:<24} {record.command:<18} serial {record.serial_before}"
        f"->{record.serial_after}  commit {commit_text(record.spec_commit)}  {outcome}"
    ]
    for change in record.changes:
        error = f": {change['error']}" if change.get("error") else ""
        detail = f" ({change['detail']})" if change.get("detail") else ""
        lines.append(
            f"    {change['action']:<20} {change['address']:<40} {change['status']}{error}{detail}"
        )
    return lines
