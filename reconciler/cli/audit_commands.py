"""Audit commands: lineage, verify, diff (history lives with the state commands)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli import cli
from reconciler.cli.state_commands import CHDIR


@cli.command()
@click.argument("ref", metavar="ADDR[@VERSION]")
@CHDIR
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default="text",
    show_default=True,
    help="html: one self-contained page (inline CSS, no script) an auditor can open.",
)
def lineage(ref: str, root: Path, as_json: bool, fmt: str) -> int:
    """Trace a model version to its run, features, data snapshot and spec commits.

    ADDR is a TrainingJob address or a registered model name; @VERSION picks a registered
    version (default: the one applied now). Each hyperparameter is shown with the commit
    that introduced its current value (from `git log` on its spec file).
    """
    from reconciler.audit import lineage_render
    from reconciler.audit.lineage import lineage as trace
    from reconciler.engine import open_state

    data = trace(root.resolve(), open_state(root), ref)
    if as_json or fmt == "json":
        click.echo(json.dumps(data, indent=2))
    elif fmt == "html":
        click.echo(lineage_render.page(data), nl=False)
    else:
        for line in lineage_render.text(data):
            click.echo(line)
    return 0


@cli.command()
@click.argument("ref", metavar="MODEL@VERSION")
@CHDIR
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--retrain",
    is_flag=True,
    help="Also train again on CPU from the recorded inputs into a scratch directory and "
    "compare: weights bit for bit (CPU-trained), metrics within 0.01 (GPU-trained).",
)
def verify(ref: str, root: Path, as_json: bool, retrain: bool) -> int:
    """Re-hash every input a model version recorded and report which still match.

    Checks the Dataset snapshot, the feature tables and transform, the trainer's code
    digest and the registered package's files. Exits 1 when any recorded digest no longer
    matches (or --retrain does not reproduce the model).
    """
    import tempfile

    from reconciler.audit import verify as verifying
    from reconciler.audit.lineage import find_job, lineage, parse_ref, registry_version
    from reconciler.engine import open_state

    backend = open_state(root)
    data = lineage(root.resolve(), backend, ref)
    found = verifying.checks(data)
    outcome: dict[str, object] = {}
    report: dict[str, object] = {"model": data["model"], "version": data["version"]}
    report["checks"] = [c.to_dict() for c in found]
    failed = sum(c.failed for c in found)
    if retrain:
        name, _ = parse_ref(ref)
        recorded = registry_version(find_job(backend.read(), name), data["version"]).lineage
        with tempfile.TemporaryDirectory(prefix="pipeform-verify-") as scratch:
            outcome = verifying.retrain(data, recorded, Path(scratch))
        report["retrain"] = outcome
        failed += not outcome["ok"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return 1 if failed else 0
    click.echo(f"{data['model']} v{data['version']}: inputs")
    for check in found:
        click.echo(f"  {check.line()}")
    if retrain:
        click.echo(f"  {'✔' if outcome['ok'] else '✘'} retrain        {outcome['detail']}")
    matched = sum(c.matches for c in found)
    click.echo(
        f"{matched} of {len(found)} digests match" + (f"; {failed} problem(s)" if failed else "")
    )
    return 1 if failed else 0


@cli.command()
@click.argument("rev1")
@click.argument("rev2")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def diff(rev1: str, rev2: str, path: Path | None, as_json: bool) -> int:
    """Show, in plan form, what changed in the spec tree at PATH between two commits.

    Both revisions are read with `git archive` into temporary directories; live state and
    providers are not touched. PATH (default: the current directory) is the spec tree
    inside a git repository.
    """
    from reconciler.audit.specdiff import diff as spec_diff
    from reconciler.render.diagnostics import write_lines
    from reconciler.render.lines import Line
    from reconciler.render.text import field_lines

    found = spec_diff((path or Path(".")).resolve(), rev1, rev2)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2, default=str))
        return 0
    lines = [Line(f"Spec changes from {found.rev1[:12]} to {found.rev2[:12]}:"), Line()]
    for address in found.added:
        lines.append(Line(f"  + {address}  will be created", style="green"))
    for address, changes in found.changed.items():
        lines.append(Line(f"  ~ {address}  will be updated", style="yellow"))
        for change in changes:
            lines += field_lines(change)
    for address in found.removed:
        lines.append(Line(f"  - {address}  will be destroyed", style="red"))
    if not (found.added or found.changed or found.removed):
        lines.append(Line("  No changes."))
    lines += [
        Line(),
        Line(
            f"Diff: {len(found.added)} to add, {len(found.changed)} to change, "
            f"{len(found.removed)} to destroy."
        ),
    ]
    write_lines(lines)
    return 0
