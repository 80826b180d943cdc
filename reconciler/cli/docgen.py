"""Generate the reference docs (spec fields, CLI) from the spec models and the click commands.

``python -m reconciler.cli.docgen`` writes ``docs/reference/specs.md`` (made by
:mod:`reconciler.cli.spec_reference` from the JSON Schemas of the models) and
``docs/reference/cli.md`` (made here from ``reconciler.cli.cli``). ``--check`` writes
nothing, names every stale file and exits 1, so CI and the unit tests catch docs that
drifted from the code. ``make generate`` runs it.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import click

from reconciler.cli.spec_reference import GENERATED, cell, code, specs_markdown

SPECS_MD = "docs/reference/specs.md"
CLI_MD = "docs/reference/cli.md"


def _help_text(command: click.Command) -> str:
    text = inspect.cleandoc(command.help or command.short_help or "").split("\f", 1)[0]
    kept = [line for line in text.splitlines() if line.strip() != "\b"]
    return "\n".join(kept).strip()


def _params(command: click.Command, ctx: click.Context) -> list[str]:
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    lines: list[str] = []
    if arguments:
        lines += ["Arguments:", ""]
        for arg in arguments:
            how = "required" if arg.required else "optional"
            if arg.nargs == -1:
                how += ", any number"
            lines.append(f"- `{arg.human_readable_name}`: {how}")
        lines.append("")
    if options:
        lines += ["| option | description |", "|---|---|"]
        for option in options:
            record = option.get_help_record(ctx)
            if record is not None:
                lines.append(f"| {cell(code(record[0]))} | {cell(record[1])} |")
        lines.append("")
    return lines


def command_section(command: click.Command, ctx: click.Context, level: int) -> list[str]:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [
        f"{'#' * level} {ctx.command_path}",
        "",
        "```",
        usage,
        "```",
        "",
        _help_text(command),
        "",
        *_params(command, ctx),
    ]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                lines.extend(command_section(sub, sub_ctx, min(level + 1, 6)))
    return lines


def cli_markdown() -> str:
    """The whole CLI reference page."""
    from reconciler.cli import cli

    ctx = click.Context(cli, info_name="pipeform", **cli.context_settings)
    lines = [
        "# CLI reference",
        "",
        GENERATED.format(source="the click commands in reconciler/cli.py"),
        "",
        "Commands that read specs take the spec tree as PATH (default: the current "
        "directory). `-h` and `--help` work on every command.",
        "",
        *command_section(cli, ctx, 2),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def rendered() -> dict[str, str]:
    """Path relative to the repository root -> the text docgen generates for it."""
    return {SPECS_MD: specs_markdown(), CLI_MD: cli_markdown()}


def stale_files(root: Path) -> list[str]:
    """The generated files under root that are missing or differ from what would be generated."""
    stale = []
    for name, text in rendered().items():
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_docs(root: Path) -> list[Path]:
    written = []
    for name, text in rendered().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.cli.docgen",
        description=f"Generate {SPECS_MD} and {CLI_MD} from the models and the CLI.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming each file that is out of date",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="the repository root (default: the current directory)",
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for name in stale:
            print(f"{name} is out of date; run `make generate`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_docs(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
