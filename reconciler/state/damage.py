"""What is wrong with a state that cannot be opened, read or written, in the user's words.

Each function returns one ``StateError`` saying what is damaged or refused, where, and how
to recover: most damage is repaired by ``pipeform state restore SERIAL``, which rebuilds
the state from the versions every write keeps (``pipeform state versions`` lists them).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

from reconciler.state.backend import StateDamaged, StateError
from reconciler.state.model import ResourceState


def restore_hint(newest: int | None) -> str:
    """How to rebuild the state from its kept versions, when there are any."""
    if newest is None:
        return (
            "No versions are kept to rebuild it from: put back a backup of the file, or move "
            "it away to start a new state and adopt each object again with pipeform import"
        )
    return (
        f"Rebuild it from the kept versions with pipeform state restore {newest} (the newest; "
        "pipeform state versions lists the others)"
    )


def not_a_directory(path: Path) -> StateDamaged:
    return StateDamaged(
        f"{path.parent} is a file, but pipeform keeps its state in the directory "
        f"{path.parent} ({path}).\n  Move that file away (mv {path.parent} "
        f"{path.parent}.bak) and run the command again."
    )


def os_error(path: Path, exc: OSError) -> StateError:
    """Creating or opening the state file failed in the filesystem."""
    where = exc.filename or path
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "read-only filesystem" if exc.errno == errno.EROFS else "permission denied"
        return StateError(
            f"cannot create the state {path}: {where} cannot be written ({why}).\n"
            "  Run the command as a user who may write the spec tree, or make it writable; "
            "read-only commands (validate, plan of a tree never applied, state list, history) "
            "need no write access."
        )
    if exc.errno == errno.EISDIR:
        return StateDamaged(
            f"the state {path} is a directory, not a state database; move it away and run "
            "the command again"
        )
    return StateError(f"cannot open the state {path}: {exc.strerror or exc} ({where})")


def explain(path: Path, exc: sqlite3.Error, newest: int | None) -> StateError:
    """A SQLite error on the state file, as what it means for the user."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    cannot_open = name.startswith("SQLITE_CANTOPEN")
    if (
        name.startswith("SQLITE_READONLY")
        or "readonly database" in text
        or (cannot_open and not _writable(path))
    ):
        return StateError(
            f"the state {path} is read-only ({text}), and this command must write to it "
            "(plan too: it takes the state lock there).\n"
            f"  Make the file and its directory {path.parent} writable by this user, or run as "
            "the user that owns them; state list, state show, state versions and history "
            "work on a read-only state."
        )
    if cannot_open:
        return StateError(
            f"cannot open the state {path} ({text}): SQLite needs to write its -wal and -shm "
            f"files beside it. Check that {path.parent} exists and is writable by this user."
        )
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return StateDamaged(
            f"the state {path} is damaged: it is not a readable SQLite database ({text}).\n"
            "  Put back a backup of the file, or move it away to start a new state and adopt "
            "each object again with pipeform import ADDRESS ID (pipeform plan names them)."
        )
    if name.startswith("SQLITE_FULL"):
        return StateError(f"cannot write the state {path}: the disk is full ({text}); free space")
    if text.startswith("no such table: "):
        table = text.removeprefix("no such table: ")
        return StateDamaged(
            f"the state {path} is damaged: its {table} table is missing.\n  " + restore_hint(newest)
        )
    return StateError(f"the state {path} cannot be used: {text}")


def _writable(path: Path) -> bool:
    """Whether this user may write the state file and its directory (SQLite writes its
    -wal and -shm files there); a read-only filesystem counts as not writable."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def not_pipeform(path: Path, tables: set[str]) -> StateDamaged:
    return StateDamaged(
        f"{path} is a SQLite database but not a pipeform state (it has "
        f"{'the tables ' + ', '.join(sorted(tables)) if tables else 'no tables'}, and no "
        "pipeform tables); pipeform leaves it alone.\n"
        "  Point spec.state.path elsewhere, or move the file away."
    )


def missing_tables(path: Path, tables: set[str], newest: int | None, serial: object) -> str:
    hint = restore_hint(newest)
    if newest is None and "resources" not in tables and str(serial).isdigit() and serial != "0":
        hint = (
            f"The resources are intact: pipeform state restore {serial} (the current serial) "
            "records them as a new version; the older versions are lost."
        )
    return (
        f"the state {path} is damaged: its {', '.join(sorted(tables))} "
        f"table{'s are' if len(tables) > 1 else ' is'} missing.\n  " + hint
    )


def lost_lineage(path: Path, newest: int | None) -> str:
    how = (
        f"pipeform state restore {newest} --lineage LINEAGE"
        if newest is not None
        else "pipeform state restore SERIAL --lineage LINEAGE"
    )
    return (
        f"the state {path} is damaged: it has lost its lineage (the meta row 'lineage'), "
        "the id that ties the objects pipeform made to this state.\n"
        "  Find it in an object's pipeform.dev/lineage label (for the local provider: "
        'grep -r pipeform.dev/lineage .pipeform/data) or in a saved plan\'s "lineage", '
        f"then write it back with {how}."
    )


def bad_serial(path: Path, serial: object, newest: int | None) -> str:
    shown = "missing" if serial is None else f"{serial!r}, not a number"
    return f"the state {path} is damaged: its serial is {shown}.\n  " + restore_hint(newest)


def bad_rows(path: Path, rows: list[tuple[str, str]], newest: int | None) -> StateDamaged:
    """The resource rows that do not hold a resource record, each with what is wrong."""
    problems = [f"the record of {address} {why}" for address, why in _row_problems(rows)]
    if not problems:  # every row parses alone: the rows together are ambiguous
        problems = ["its resource records do not read back as one record per row"]
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    return StateDamaged(f"the state {path} is damaged: {shown}.\n  " + restore_hint(newest))


def _row_problems(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    found = []
    for address, data in rows:
        try:
            record = json.loads(data)
        except (ValueError, TypeError) as exc:
            found.append((address, f"is not JSON ({exc})"))
            continue
        if not isinstance(record, dict):
            found.append((address, f"is a JSON {_json_type(record)}, not an object"))
            continue
        try:
            resource = ResourceState.from_dict(record)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            found.append((address, f"is not a resource record ({exc})"))
            continue
        if resource.address != address:
            found.append((address, f"holds the record of {resource.address!r}"))
    return found


def _json_type(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


def unknown_serial(serial: int, versions: list[str], kept: int) -> StateError:
    if not versions:
        return StateError(
            f"there is no state version {serial}: this state keeps no versions (it was never written)"
        )
    more = f"\n  ({kept - len(versions)} older: pipeform state versions --limit {kept})"
    return StateError(
        f"there is no state version {serial}; the kept versions are:\n  "
        + "\n  ".join(versions)
        + (more if kept > len(versions) else "")
    )
