"""Between pipeform and a training process: the parent-death signal, and secret redaction.

Run by path (``python relay.py PARENT_PID -- COMMAND...``, never imported as part of the
package, so it starts without loading pipeform), with stdout and stderr on the run's log
file. It

- asks the kernel for SIGTERM when pipeform dies (``PR_SET_PDEATHSIG``) and exits at once
  if pipeform is already gone, so a killed pipeform leaves no trainer running unwatched;
- runs COMMAND with its output on a pipe, and writes that output to the log with the value
  of every environment variable named in ``PIPEFORM_REDACT_VARS`` (the TrainingJob's env
  from Secrets) replaced by ``[redacted]``: a secret that training code prints never
  reaches the disk;
- passes SIGTERM and SIGINT on to COMMAND, keeps relaying until it ends, and ends the way
  it did (the same exit code, or the same signal).

Only the standard library: this file also runs where pipeform's packages are not
importable.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

REDACT_ENV = "PIPEFORM_REDACT_VARS"
MARK = b"[redacted]"
CHUNK = 65536


def secret_values(environ: dict[str, str]) -> list[bytes]:
    """The values to redact, longest first (so a secret holding another is hidden whole)."""
    names = [n for n in environ.get(REDACT_ENV, "").split(",") if n]
    values = {os.fsencode(environ[n]) for n in names if environ.get(n)}
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Redacts a byte stream that arrives in pieces: a secret split across two reads is
    still found, because text is held back until a newline or until more than the
    longest secret has arrived after it."""

    def __init__(self, secrets: list[bytes]) -> None:
        self.secrets = secrets
        self.keep = max((len(s) for s in secrets), default=1) - 1
        self.pending = b""

    def _redact(self, data: bytes) -> bytes:
        for value in self.secrets:
            data = data.replace(value, MARK)
        return data

    def feed(self, data: bytes) -> bytes:
        """What may be written now."""
        if not self.secrets:
            return data
        self.pending += data
        cut = self.pending.rfind(b"\n") + 1
        if cut == 0 and len(self.pending) > CHUNK:  # a long line: keep only a secret's tail
            text = self._redact(self.pending)
            cut_at = max(0, len(text) - self.keep)
            out, self.pending = text[:cut_at], text[cut_at:]
            return out
        out, self.pending = self._redact(self.pending[:cut]), self.pending[cut:]
        return out

    def close(self) -> bytes:
        out, self.pending = self._redact(self.pending), b""
        return out


def main(argv: list[str]) -> int:
    parent, command = int(argv[1]), argv[3:]
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # pipeform died between fork and prctl
        return 1
    redactor = Redactor(secret_values(dict(os.environ)))
    env = {k: v for k, v in os.environ.items() if k != REDACT_ENV}
    started: list[subprocess.Popen[bytes]] = []
    early: list[int] = []  # a stop that came before the child existed

    def pass_on(signum: int, frame: object) -> None:
        if not started:
            early.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    for stop in (signal.SIGTERM, signal.SIGINT):  # before the child: no window to die in
        signal.signal(stop, pass_on)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    started.append(child)
    for pending in early:
        child.send_signal(pending)
    assert child.stdout is not None
    out = sys.stdout.buffer
    while True:
        try:
            data = os.read(child.stdout.fileno(), CHUNK)
        except InterruptedError:
            continue
        if not data:
            break
        out.write(redactor.feed(data))
        out.flush()
    out.write(redactor.close())
    out.flush()
    code = child.wait()
    if code < 0:  # ended by a signal: end the same way, so pipeform sees what happened
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
