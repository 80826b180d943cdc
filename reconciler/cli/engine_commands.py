"""Commands that plan, change or inspect state: plan, apply, destroy, refresh, import,
state, force-unlock, history. Argument handling only; the work is in reconciler.engine.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from reconciler.cli import PATHS, _paths, cli, trust_options
from reconciler.cli.progress import listener
from reconciler.diagnostics import PipeformError


def _seconds(text: str) -> float:
    from reconciler.kinds.quantities import parse_duration

    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


LOCK_TIMEOUT = click.option(
    "--lock-timeout",
    default="0s",
    show_default=True,
    metavar="DURATION",
    help="Wait this long for the state lock (such as 30s or 5m).",
)


def _out(stderr: bool = False) -> Any:
    from reconciler.render.diagnostics import console

    return console(stderr=stderr)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        _out(stderr=True).print(f"note: {note}")


def _warn_owned(session: Any) -> None:
    """Loudly, on stderr: an empty state beside objects this tree's providers own."""
    from reconciler import recovery
    from reconciler.render.diagnostics import write_lines
    from reconciler.render.lines import Line

    state = session.backend.read()
    found = recovery.owned_without_state(session.providers, session.root, state)
    lines = recovery.owned_warning(found, state)
    if lines:
        styled = [Line(lines[0], style="yellow bold"), *(Line(t) for t in lines[1:])]
        write_lines([Line(""), *styled], stderr=True)


def _plan_options(
    mode: str,
    refresh: bool,
    target: tuple[str, ...],
    replace: tuple[str, ...],
    allow_over_budget: bool = False,
    parallelism: int = 10,
) -> Any:
    from reconciler.plan.planner import PlanOptions

    return PlanOptions(
        mode=mode,
        refresh=refresh,
        targets=tuple(target),
        replace=tuple(replace),
        allow_over_budget=allow_over_budget,
        parallelism=parallelism,
    )


PARALLELISM = click.option(
    "--parallelism",
    default=10,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Resources changed at once, and live objects read at once by providers that "
    "wait on a server.",
)


ALLOW_OVER_BUDGET = click.option(
    "--allow-over-budget",
    is_flag=True,
    help="Accept a plan that would exceed an enforced Budget (shown as a warning instead).",
)


def _enforce_policy(plan: Any) -> None:
    """Refuse a plan that breaks a budget, quota or label policy: every error at once."""
    from reconciler.plan import policy

    policy.enforce(plan)


def _check_addresses(session: Any, addresses: tuple[str, ...], option: str) -> None:
    if not addresses:
        return
    known = set(session.checked.tree.documents) | set(session.backend.read().resources)
    from reconciler.diagnostics import suggestion

    for address in addresses:
        if address not in known:
            hint = suggestion(address, known) or "see pipeform state list"
            raise PipeformError(f"{option} {address}: no such resource ({hint})")


def _show_plan(plan: Any, fmt: str) -> None:
    if fmt == "json":
        from reconciler.render import jsonplan

        click.echo(json.dumps(jsonplan.render(plan), indent=2, default=str))
    elif fmt == "markdown":
        from reconciler.render import markdown

        click.echo(markdown.render(plan))
    else:
        from reconciler.render import text
        from reconciler.render.diagnostics import write_lines

        write_lines(text.render(plan))


@cli.command()
@PATHS
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan to FILE for `pipeform apply FILE`.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for tools, markdown for pull requests.",
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when something does."
)
@click.option(
    "--target",
    multiple=True,
    metavar="ADDR",
    help="Plan only ADDR and what it depends on (repeatable).",
)
@click.option(
    "--replace", multiple=True, metavar="ADDR", help="Replace ADDR even if unchanged (repeatable)."
)
@click.option(
    "--refresh",
    type=click.BOOL,
    default=True,
    show_default=True,
    metavar="BOOL",
    help="Read live objects first to detect drift; --refresh=false plans from state alone.",
)
@click.option(
    "--refresh-only",
    is_flag=True,
    help="Only report drift; applying it records live values in state.",
)
@click.option("--destroy", is_flag=True, help="Plan destroying every managed resource.")
@PARALLELISM
@ALLOW_OVER_BUDGET
@LOCK_TIMEOUT
@click.option(
    "--lock",
    type=click.BOOL,
    default=True,
    show_default=True,
    metavar="BOOLEAN",
    help="Hold the state lock while planning. --lock=false (as Terraform's -lock=false) plans "
    "from one consistent read of the state without it, so pull requests can plan while an "
    "apply runs; a plan saved so is still refused at apply when the state moved since.",
)
@trust_options
def plan(
    paths: tuple[Path, ...],
    out_file: Path | None,
    as_json: bool,
    fmt: str,
    detailed_exitcode: bool,
    target: tuple[str, ...],
    replace: tuple[str, ...],
    refresh: bool,
    refresh_only: bool,
    destroy: bool,
    parallelism: int,
    allow_over_budget: bool,
    lock_timeout: str,
    lock: bool,
    trust: Any,
) -> int:
    """Show what apply would change in the spec tree at PATH, and why.

    The plan shows the estimated cost of the training it starts and the budgets it counts
    against; a plan that breaks a policy (an enforced budget, a quota, required labels)
    exits 1 and is not saved.
    """
    from reconciler import engine

    if refresh_only and destroy:
        raise click.UsageError("--refresh-only and --destroy cannot be combined")
    mode = "refresh-only" if refresh_only else "destroy" if destroy else "normal"
    # A plan only shown creates no state; a saved one is bound to the state's lineage.
    session = engine.open_session(_paths(paths), "create" if out_file else "existing", trust)
    held: AbstractContextManager[list[str]] = (
        engine.locked(session.backend, _seconds(lock_timeout)) if lock else nullcontext([])
    )
    with held as notes:
        _print_notes(notes)
        _check_addresses(session, target + replace, "--target/--replace")
        options = _plan_options(mode, refresh, target, replace, allow_over_budget, parallelism)
        result = engine.plan(session, options)
    _show_plan(result, "json" if as_json else fmt)
    _warn_owned(session)
    _enforce_policy(result)  # a refused plan is never saved
    if out_file is not None:
        engine.save_plan(result, out_file)
        _out(stderr=True).print(
            f"Saved the plan to {out_file}. Apply it with: pipeform apply {out_file}"
        )
    return 2 if detailed_exitcode and result.has_changes else 0


def _confirm(auto_approve: bool, what: str) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise PipeformError(
            f"{what} needs confirmation, and there is no terminal to ask on; "
            "review the plan and run again with --auto-approve"
        )
    answer = click.prompt(
        "Do you want to perform these actions? Only 'yes' will be accepted",
        default="",
        show_default=False,
    )
    if answer.strip() != "yes":
        raise PipeformError(f"{what} cancelled.")


def _finish(report: Any, plan: Any) -> int:
    out = _out()
    what = "Destroy" if plan.mode == "destroy" else "Apply"
    failed, ok, skipped = report.count("failed"), report.count("succeeded"), report.count("skipped")
    if report.failed or skipped:
        out.print(
            f"{what} finished with {failed} error{'s' if failed != 1 else ''}: {ok} succeeded, "
            f"{failed} failed, {skipped} skipped. State saved (serial {report.serial})."
        )
        return 1
    c = plan.counts()
    done = (
        f"{c['destroy']} destroyed"
        if plan.mode == "destroy"
        else f"{c['add']} added, {c['change']} changed, {c['replace']} replaced, "
        f"{c['destroy']} destroyed"
    )
    out.print(f"{what} complete! Resources: {done}. State saved (serial {report.serial}).")
    return 0


def _apply(
    paths: tuple[Path, ...],
    plan_file: Path | None,
    mode: str,
    auto_approve: bool,
    parallelism: int,
    lock_timeout: str,
    target: tuple[str, ...],
    replace: tuple[str, ...],
    command: str,
    allow_over_budget: bool = False,
    force_conflicts: bool = False,
    wait: bool = True,
) -> int:
    from reconciler import engine
    from reconciler.apply.applier import ApplyOptions

    session = engine.open_session(_paths(paths))
    with engine.locked(session.backend, _seconds(lock_timeout)) as notes:
        _print_notes(notes)
        if plan_file is not None:
            result = engine.load_plan(plan_file)
            engine.check_fresh(result, session)
            engine.preflight(session, result)
            _enforce_policy(result)
        else:
            _check_addresses(session, target + replace, "--target/--replace")
            options = _plan_options(mode, True, target, replace, allow_over_budget, parallelism)
            result = engine.plan(session, options)
            _warn_owned(session)  # first: it explains what the checks below may refuse
            engine.preflight(session, result)  # before the plan is shown or approved
            _show_plan(result, "text")
            _enforce_policy(result)
            if not result.has_changes:
                if mode == "normal":  # a successful apply that changed nothing, for monitoring
                    from reconciler.apply.applier import ApplyReport

                    done = ApplyReport(serial=result.serial)
                    engine.push_metrics(session, done, drift=len(result.drift))
                return 0
            _confirm(auto_approve, command)
        if result.mode == "refresh-only":
            serial = engine.apply_refresh(session, result)
            _out().print(f"Refresh recorded. State saved (serial {serial}).")
            return 0
        options = ApplyOptions(force_conflicts=force_conflicts, wait=wait)
        report = engine.apply(session, result, command, parallelism, listener(), options=options)
    return _finish(report, result)


@cli.command()
@click.argument("args", nargs=-1, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@PARALLELISM
@click.option(
    "--target", multiple=True, metavar="ADDR", help="Apply only ADDR and what it depends on."
)
@click.option("--replace", multiple=True, metavar="ADDR", help="Replace ADDR even if unchanged.")
@ALLOW_OVER_BUDGET
@click.option(
    "--force-conflicts",
    is_flag=True,
    help="Take ownership of fields another field manager holds (kubernetes server-side "
    "apply conflicts), instead of stopping at them.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    help="Wait for started training jobs to finish (kubernetes); --no-wait records them as "
    "running, and a later plan or refresh picks up their outcome.",
)
@LOCK_TIMEOUT
def apply(
    args: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    target: tuple[str, ...],
    replace: tuple[str, ...],
    allow_over_budget: bool,
    force_conflicts: bool,
    wait: bool,
    lock_timeout: str,
) -> int:
    """Make the live objects match the spec tree at PATH, or carry out a saved PLANFILE.

    pipeform apply [PATH] plans, shows the plan and asks before changing anything;
    pipeform apply PLANFILE carries out a plan saved with plan --out (specs in the
    current directory, or give PATH first: pipeform apply PATH PLANFILE).
    """
    plan_file = next((a for a in args if a.is_file() and a.suffix not in (".yaml", ".yml")), None)
    paths = tuple(a for a in args if a != plan_file)
    return _apply(
        paths,
        plan_file,
        "normal",
        auto_approve or plan_file is not None,
        parallelism,
        lock_timeout,
        target,
        replace,
        "pipeform apply",
        allow_over_budget,
        force_conflicts,
        wait,
    )


@cli.command()
@PATHS
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for confirmation.")
@PARALLELISM
@click.option(
    "--target", multiple=True, metavar="ADDR", help="Destroy only ADDR and what depends on it."
)
@LOCK_TIMEOUT
def destroy(
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    target: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Destroy every resource pipeform manages for the spec tree at PATH."""
    return _apply(
        paths,
        None,
        "destroy",
        auto_approve,
        parallelism,
        lock_timeout,
        target,
        (),
        "pipeform destroy",
    )


@cli.command()
@PATHS
@LOCK_TIMEOUT
def refresh(paths: tuple[Path, ...], lock_timeout: str) -> int:
    """Read every managed object and record its live values in state (drift is reported)."""
    return _apply(paths, None, "refresh-only", True, 1, lock_timeout, (), (), "pipeform refresh")


@cli.command("import")
@click.argument("address")
@click.argument("external_id", metavar="ID")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@LOCK_TIMEOUT
def import_(address: str, external_id: str, paths: tuple[Path, ...], lock_timeout: str) -> int:
    """Adopt an existing object ID as the resource ADDR (whose document must exist)."""
    from reconciler import engine

    session = engine.open_session(_paths(paths))
    with engine.locked(session.backend, _seconds(lock_timeout)) as notes:
        _print_notes(notes)
        serial = engine.import_resource(session, address, external_id)
    _out().print(
        f"Imported {external_id} as {address}. State saved (serial {serial}). "
        "Run pipeform plan to see how it differs from its spec."
    )
    return 0


from reconciler.cli import promote_commands as cli_promote  # noqa: E402,F401  (registers approve and rollback)
from reconciler.cli import state_commands as cli_state  # noqa: E402,F401  (registers the state commands)
