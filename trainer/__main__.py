"""``python -m trainer``: the trainer's command line (see trainer/cli.py)."""

from __future__ import annotations

from trainer.cli import main

raise SystemExit(main())
