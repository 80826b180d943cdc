"""``promtool check rules`` on a rules file before it replaces the live one.

Without promtool the rules cannot be checked: in CI (``CI`` set to true) that is an
error, elsewhere the file is written after one warning, since Prometheus itself still
refuses a bad file on reload and keeps the rules it had.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from providers.base import PermanentError

log = logging.getLogger("pipeform.prometheus")
_warned = False
INSTALL = "install the Debian package prometheus (apt-get install prometheus), which ships promtool"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def check_rules(path: Path, shown: str) -> None:
    """Raise PermanentError with promtool's findings when it refuses the file at path."""
    global _warned
    exe = shutil.which("promtool")
    if exe is None:
        if in_ci():
            raise PermanentError(
                f"promtool is not installed, so {shown} cannot be checked; {INSTALL}"
            )
        if not _warned:
            _warned = True
            log.warning("promtool is not installed: writing %s unchecked; %s", shown, INSTALL)
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
