"""The trainer's own errors, each mapped to one exit code by the runner.

::

    TrainerError            a readable one-line problem: EXIT_FAILED
     ├── BadInputError      an input table is missing or its checksum differs: EXIT_BAD_INPUT
     └── Preempted          SIGTERM: a checkpoint was saved: EXIT_PREEMPTED (143; 5 before config v4)
"""

from __future__ import annotations


class TrainerError(RuntimeError):
    """A problem the user can fix; its message says what, where and how."""


class BadInputError(TrainerError):
    """An input table is missing or does not match its recorded sha256."""


class Preempted(TrainerError):
    """The run was asked to stop (SIGTERM) and saved a checkpoint to resume from."""

    def __init__(self, checkpoint: str | None) -> None:
        super().__init__(f"preempted by SIGTERM; resume from {checkpoint or 'the start'}")
        self.checkpoint = checkpoint
