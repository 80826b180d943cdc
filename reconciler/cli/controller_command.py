"""`pipeform controller`: argument handling only; the loop is reconciler.controller."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from reconciler.cli import cli
from reconciler.cli.engine_commands import PARALLELISM, _seconds
from reconciler.diagnostics import PipeformError


def _listen(text: str, from_command_line: bool) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise PipeformError(f"--listen {text}: give HOST:PORT, such as 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not from_command_line:
        raise PipeformError(
            f"--listen {text}: a non-loopback address exposes the status page and webhook; "
            "it is a trusted setting, taken only from the command line"
        )
    return host, int(port)


def _secret(var: str | None) -> bytes | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise PipeformError(f"--webhook-secret-env {var}: the environment variable is not set")
    return value.encode()


@cli.command()
@click.option("--repo", required=True, metavar="PATH_OR_URL", help="The git repository to follow.")
@click.option("--branch", default="main", show_default=True, help="The branch to apply.")
@click.option(
    "--path",
    "spec_path",
    default=".",
    show_default=True,
    metavar="SPECDIR",
    help="The spec tree inside the repository.",
)
@click.option(
    "--interval",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Time between reconciles (such as 30s or 5m).",
)
@click.option(
    "--auto-apply/--plan-only",
    default=False,
    show_default=True,
    help="Apply each new commit and repair drift, or only plan and report OutOfSync.",
)
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the status page, health, metrics and webhook listen (port 0: any "
    "free port). A non-loopback address must be given here explicitly.",
)
@click.option(
    "--webhook-secret-env",
    metavar="VAR",
    help="The environment variable holding the webhook's HMAC secret; without it "
    "every webhook request is refused.",
)
@click.option(
    "--state-dir",
    default=".pipeform-controller",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the working clone (and the state, under the spec tree's .pipeform) is kept.",
)
@click.option(
    "--max-backoff",
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="The longest wait between failed reconciles.",
)
@PARALLELISM
@click.pass_context
def controller(
    ctx: click.Context,
    repo: str,
    branch: str,
    spec_path: str,
    interval: str,
    auto_apply: bool,
    listen: str,
    webhook_secret_env: str | None,
    state_dir: Path,
    max_backoff: str,
    parallelism: int,
) -> int:
    """Follow a git branch: plan and apply each new commit, repair drift, serve a status page.

    One instance per state (the state lock); SIGTERM finishes the change in flight,
    persists state, releases the lock and exits 0. Logs are JSON lines on stderr.
    """
    import signal

    from reconciler.controller.loop import Controller, Settings
    from reconciler.controller.server import serve

    source = ctx.get_parameter_source("listen")
    host, port = _listen(listen, source is click.core.ParameterSource.COMMANDLINE)
    seconds = _seconds(interval)
    if seconds <= 0:
        raise PipeformError(f"--interval {interval}: give a positive duration, such as 60s")
    settings = Settings(
        repo=repo,
        branch=branch,
        path=spec_path,
        interval=seconds,
        auto_apply=auto_apply,
        home=state_dir.resolve(),
        max_backoff=_seconds(max_backoff),
        parallelism=parallelism,
    )
    loop = Controller(settings)
    secret = _secret(webhook_secret_env)
    try:
        server = serve(loop, host, port, secret)
    except OSError as exc:
        raise PipeformError(f"--listen {listen}: cannot listen there ({exc.strerror})") from None

    def stop(signum: int, frame: object) -> None:
        loop.stop.set()
        loop.wake.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from reconciler.controller import logs

    bound_host, bound_port = server.server_address[:2]
    logs.event("listening", url=f"http://{bound_host!s}:{bound_port}/")
    loop.run()
    server.shutdown()
    return 0
