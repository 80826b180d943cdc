"""The pipeform command line: click commands and argument handling only.

Heavy modules are imported inside the commands so that ``pipeform --help`` stays instant.
Exit codes: 0 ok, 1 any error (usage errors too), 2 changes present (--detailed-exitcode).
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli import startup
from reconciler.diagnostics import PipeformError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def _paths(paths: tuple[Path, ...]) -> list[Path]:
    return list(paths) or [Path(".")]


def trust_options(command: Any) -> Any:
    """``--untrusted`` and ``--trusted-config FILE`` for a command that reads specs; the
    command gets ``trust`` (``reconciler.spec.trust.Trust``, the environment's
    PIPEFORM_UNTRUSTED and PIPEFORM_TRUSTED_CONFIG counted too)."""
    import functools

    @functools.wraps(command)
    def with_trust(*args: Any, untrusted: bool, trusted_config: Path | None, **kwargs: Any) -> Any:
        from reconciler.spec.trust import Trust

        return command(*args, trust=Trust.resolve(untrusted, trusted_config), **kwargs)

    with_trust = click.option(
        "--trusted-config",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Run untrusted, held to this trusted configuration (kept on the protected "
        "branch; also PIPEFORM_TRUSTED_CONFIG). See docs/security.md.",
    )(with_trust)
    return click.option(
        "--untrusted",
        is_flag=True,
        help="The specs come from an untrusted source (a pull request): reach only what "
        "trusted configuration allows (also PIPEFORM_UNTRUSTED=1).",
    )(with_trust)


@click.group(context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """pipeform: declarative, Terraform-style pipelines for ML training.

    Specs (Datasets, FeatureSets, TrainingJobs, Quotas, Secrets, Alerts, SLOs,
    Budgets) live in a directory of YAML files; commands take it as PATH
    (default: the current directory).
    """
    ctx.obj = {"debug": debug}


@cli.command()
@PATHS
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable diagnostics.")
@trust_options
@click.pass_obj
def validate(obj: dict[str, Any], paths: tuple[Path, ...], as_json: bool, trust: Any) -> int:
    """Check the spec tree at PATH: syntax, kinds, fields, units, references, cycles.

    Every problem is reported at once, each with file:line:column. Exits 0 when the
    specs are valid and 1 when they are not.
    """
    from reconciler.render.diagnostics import print_diagnostics
    from reconciler.spec.checks import check

    if as_json:
        return _validate_json(_paths(paths), trust, debug=obj["debug"])
    checked = check(_paths(paths), trust)
    diags = checked.diagnostics
    print_diagnostics(diags)
    if diags.has_errors:
        return 1
    click.echo(_valid_summary(checked))
    return 0


def _valid_summary(checked: Any) -> str:
    """``Success! 5 resources and a Workspace in 3 files are valid.``: what was counted."""
    n, files = len(checked.tree.documents), len(checked.tree.files)
    counted = f"{n} resource{'s' if n != 1 else ''}"
    workspace = checked.tree.workspace_source is not None
    if workspace:
        counted += " and a Workspace"
    where = f"in {files} file{'s' if files != 1 else ''}"
    verb = "is" if n == 1 and not workspace else "are"
    if workspace:
        return f"Success! {counted} {where} {verb} valid."
    return f"Success! {counted} {where} {verb} valid (no Workspace document: its defaults apply)."


def _validate_json(paths: list[Path], trust: Any, debug: bool) -> int:
    """validate --json: always one JSON document on stdout, which tools parse, even when
    the check itself fails (then with the failure as its one diagnostic)."""
    from reconciler.diagnostics import Diagnostics, error
    from reconciler.render.diagnostics import diagnostics_json
    from reconciler.spec.checks import check

    try:
        checked = check(paths, trust)
    except PipeformError as exc:
        click.echo(diagnostics_json(exc.diagnostics, documents=0, files=0))
        return 1
    except Exception as exc:
        if debug:
            raise
        failure = error(
            f"unexpected internal error: {type(exc).__name__}: {exc}",
            hint="run again with --debug to see the traceback, and please report it",
        )
        click.echo(diagnostics_json(Diagnostics([failure]), documents=0, files=0))
        _report(exc)
        return 1
    diags = checked.diagnostics
    click.echo(
        diagnostics_json(
            diags, documents=len(checked.tree.documents), files=len(checked.tree.files)
        )
    )
    return 1 if diags.has_errors else 0


@cli.command()
@PATHS
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "levels"]),
    default="dot",
    show_default=True,
    help="dot: Graphviz DOT; levels: the groups that run in parallel, in order.",
)
@trust_options
def graph(paths: tuple[Path, ...], fmt: str, trust: Any) -> int:
    """Print the dependency graph of the spec tree at PATH.

    Edges point from a dependency to what depends on it (the way data flows):
    render with `pipeform graph | dot -Tsvg > graph.svg`.
    """
    from reconciler.render.diagnostics import print_diagnostics
    from reconciler.spec.checks import check

    checked = check(_paths(paths), trust)
    print_diagnostics(checked.diagnostics)
    if checked.diagnostics.has_errors:
        return 1
    if fmt == "dot":
        click.echo(checked.graph.to_dot(), nl=False)
    else:
        for i, level in enumerate(checked.graph.levels(), 1):
            click.echo(f"{i}: {' '.join(level)}")
    return 0


@cli.command()
@click.argument("kind", required=False)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every schema file into this directory instead of printing.",
)
def schema(kind: str | None, write_dir: Path | None) -> int:
    """Print the JSON Schema of KIND, or of any document when KIND is omitted.

    Point your editor at it for completion and checks, for example with
    `# yaml-language-server: $schema=specs/schema/pipeform.schema.json`.
    """
    import json

    from reconciler.spec import schema as schemas

    if write_dir is not None:
        for path in schemas.write_schemas(write_dir):
            click.echo(f"wrote {path}")
        return 0
    if kind is None:
        click.echo(json.dumps(schemas.document_schema(), indent=2))
        return 0
    model = schemas.find_kind(kind)
    if model is None:
        from reconciler.diagnostics import suggestion
        from reconciler.kinds import KINDS

        hint = suggestion(kind, KINDS) or f"kinds: {', '.join(KINDS)}"
        raise PipeformError(f"kind {kind!r} is not known ({hint})")
    click.echo(json.dumps(schemas.kind_schema(model), indent=2))
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def version(as_json: bool) -> int:
    """Print pipeform's version and the Python it runs on."""
    import json
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        ours = dist_version("pipeform")
    except PackageNotFoundError:
        ours = "unknown (not installed)"
    info = {"pipeform": ours, "python": platform.python_version(), "platform": platform.platform()}
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"pipeform {ours}\npython {info['python']} on {info['platform']}")
    return 0


def _report(exc: BaseException) -> None:
    from reconciler.render.diagnostics import print_diagnostics, write_lines
    from reconciler.render.lines import Line

    if isinstance(exc, PipeformError):
        print_diagnostics(exc.diagnostics, summary=len(exc.diagnostics) > 1)
        if exc.footer:
            write_lines([Line(exc.footer)], stderr=True)
    else:
        error = f"Error: unexpected internal error: {type(exc).__name__}: {exc}"
        hint = "Run again with --debug to see the traceback, and please report it."
        write_lines([Line(error, style="red bold"), Line(hint)], stderr=True)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: no traceback unless --debug, exit 1 on every error."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    # A command builds many objects that live to its end (specs, state, the plan); with
    # the default thresholds (700, 10, 10) the cycle collector scans them again and again,
    # about a third of a 10,000-resource plan. Collect young objects 100x less often.
    gc.set_threshold(100_000, 50, 100)
    # pydantic's validation-plugin scan: off unless the user set PYDANTIC_DISABLE_PLUGINS
    startup.configure()
    try:
        code = cli.main(args=args, prog_name="pipeform", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except PipeformError as exc:
        _report(exc)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        _report(exc)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


#: Commands that change nothing outside their own output (plan's --out file is written and
#: closed, and its lock released, before the command returns).
READ_ONLY = frozenset({"plan", "validate", "graph", "version", "history", "lineage", "diff"})


def run() -> None:
    """The console script: main(), then, for a read-only command, an immediate exit.

    Tearing down the objects of a large command (a plan of 10,000 resources holds specs,
    state, live objects and the plan) costs about a twentieth of the command; once its
    output is flushed nothing is left to do, so a read-only command leaves with
    ``os._exit``. Writing commands (apply, destroy, state rm...) exit normally, so that
    every library's exit handler runs. In-process callers use main(), which never does this.
    """
    try:
        main()
    except SystemExit as exc:
        if not isinstance(exc.code, int | None) or _command(sys.argv[1:]) not in READ_ONLY:
            raise
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: let the normal exit report it
            raise exc from None
        os._exit(exc.code or 0)


def _command(args: list[str]) -> str | None:
    """The subcommand's name: the first argument that is not an option (--debug is the
    only option that comes before one)."""
    return next((a for a in args if not a.startswith("-")), None)


from reconciler.cli import audit_commands as cli_audit  # noqa: E402,F401  (lineage, verify, diff)
from reconciler.cli import controller_command as cli_controller  # noqa: E402,F401  (registers controller)
from reconciler.cli import engine_commands as cli_engine  # noqa: E402,F401  (registers plan, apply, state, ...)
