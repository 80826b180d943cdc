"""``promtool check rules`` on a rules file before it replaces the live one.

Without promtool the rules cannot be checked. When the Workspace asks for it
(``providers.prometheus.requirePromtool: true``) that is an error; by default the file is
written after one warning, since Prometheus itself still refuses a bad file on reload and
keeps the rules it had.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from providers.base import PermanentError

log = logging.getLogger("pipeform.prometheus")
_warned = False
INSTALL = "install the Debian package prometheus (apt-get install prometheus), which ships promtool"


def check_rules(path: Path, shown: str, required: bool = False) -> None:
    """Raise PermanentError with promtool's findings when it refuses the file at path.

    Without promtool: PermanentError when ``required`` (the Workspace's
    ``requirePromtool``), else one warning per process and the file goes unchecked."""
    global _warned
    exe = shutil.which("promtool")
    if exe is None:
        if required:
            raise PermanentError(
                f"promtool is not installed, so {shown} cannot be checked, and the Workspace "
                f"sets providers.prometheus.requirePromtool: true; {INSTALL}, or set "
                "requirePromtool: false to write rules files unchecked"
            )
        if not _warned:
            _warned = True
            log.warning(
                "warning: promtool is not installed: writing %s unchecked; %s "
                "(or set providers.prometheus.requirePromtool: true in the Workspace to "
                "make this an error)",
                shown,
                INSTALL,
            )
        return
    try:
        done = subprocess.run(
            [exe, "check", "rules", "--lint-fatal", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PermanentError(
            f"promtool check rules did not finish within 60s for {shown}"
        ) from None
    if done.returncode != 0:
        found = (done.stdout + done.stderr).replace(str(path), shown)
        lines = [line.strip() for line in found.splitlines() if line.strip()]
        detail = "; ".join(line for line in lines if not line.startswith("Checking "))
        raise PermanentError(
            f"promtool refused the rules for {shown}: {detail or 'no detail given'}. "
            "Fix the PromQL in the Alert or SLO spec (expr, sli.good, sli.total)"
        )
