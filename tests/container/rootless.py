"""An unprivileged user with rootless podman, and commands run as that user.

Setting the user up needs root (CI runs as root): the account, its subordinate uid and
gid ranges (/etc/subuid, /etc/subgid; newuidmap from Debian's uidmap package uses them),
and podman's overlay storage for it (this podman's rootless default is vfs, which copies
every layer of the 1.6 GB image). Without root, or without newuidmap, the tests skip,
except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from providers.local.container import PODMAN_GLOBAL
from tests.conftest import ROOT
from tests.integration.servers import unavailable

USER = "pipeform-rootless"
#: the size of a subordinate id range (Debian's SUB_UID_COUNT)
RANGE = 65536


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd="/", check=False
    )
    assert done.returncode == 0, f"{shlex.join(argv)}: {done.stdout}{done.stderr}"
    return done


def set_up_user() -> pwd.struct_passwd:
    """The user, created when missing, with subordinate ids and overlay storage."""
    if os.geteuid() != 0:
        unavailable("setting up a rootless podman user needs root (CI runs the tests as root)")
    if shutil.which("newuidmap") is None:
        unavailable("rootless podman needs newuidmap: apt-get install uidmap")
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", USER])
        account = pwd.getpwnam(USER)
    for ids, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        ranges = _ranges(Path(ids))
        if USER not in ranges:
            start = max([100000, *(first + count for first, count in ranges.values())])
            run(["usermod", flag, f"{start}-{start + RANGE - 1}", USER])
    home = Path(account.pw_dir)
    conf = home / ".config" / "containers" / "storage.conf"
    if not conf.exists() and not (home / ".local" / "share" / "containers").exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text('[storage]\ndriver = "overlay"\n')
        for path in (home / ".config", conf.parent, conf):
            os.chown(path, account.pw_uid, account.pw_gid)
    run(as_user(account, ["podman", "system", "migrate"]))
    return account


def _ranges(path: Path) -> dict[str, tuple[int, int]]:
    lines = path.read_text().splitlines() if path.exists() else []
    fields = [line.split(":") for line in lines if line.count(":") == 2]
    return {name: (int(first), int(count)) for name, first, count in fields}


def as_user(account: pwd.struct_passwd, argv: list[str], **env: str) -> list[str]:
    """argv run as the user, in a clean environment (no XDG_RUNTIME_DIR: podman then
    keeps its runtime files in /tmp/podman-run-UID)."""
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": account.pw_dir,
        "USER": account.pw_name,
        "LOGNAME": account.pw_name,
    }
    environment = [f"{name}={value}" for name, value in {**base, **env}.items()]
    return ["runuser", "-u", account.pw_name, "--", "env", "-i", *environment, *argv]


def podman_as(account: pwd.struct_passwd, *args: str) -> list[str]:
    return as_user(account, ["podman", *PODMAN_GLOBAL, *args])


def with_python(account: pwd.struct_passwd, argv: list[str], hold: Path, **env: str) -> list[str]:
    """argv (this checkout's Python) run as the user. Where the interpreter, the virtual
    environment or the checkout lie under a folder others cannot enter (here: /root, which
    holds pyenv's Python), the command runs in a private mount namespace where that folder
    is an empty tmpfs with only those paths mounted back: nothing changes on the host."""
    command = as_user(account, argv, **env)
    needed: list[Path] = []
    for path in sorted(
        {Path(p).resolve() for p in (sys.base_prefix, sys.prefix, ROOT)}, key=lambda p: len(p.parts)
    ):
        if not any(path.is_relative_to(kept) for kept in needed):
            needed.append(path)
    closed = {path: _closed_folder(path) for path in needed}
    hidden = {path: folder for path, folder in closed.items() if folder is not None}
    if not hidden:
        return command
    script = ["set -e", "mount --make-rprivate /"]
    for i, path in enumerate(hidden):
        (hold / str(i)).mkdir(parents=True, exist_ok=True)
        script.append(f"mount --bind {shlex.quote(str(path))} {hold / str(i)}")
    for folder in sorted(set(hidden.values()), key=lambda p: len(p.parts)):
        script.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(folder))}")
    for i, path in enumerate(hidden):
        quoted = shlex.quote(str(path))
        script += [f"mkdir -p {quoted}", f"mount --move {hold / str(i)} {quoted}"]
    script.append('exec "$@"')
    return ["unshare", "--mount", "bash", "-c", "\n".join(script), "reveal", *command]


def _closed_folder(path: Path) -> Path | None:
    """The outermost folder above path that others cannot enter, if any."""
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None
