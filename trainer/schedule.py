"""Learning-rate schedules as multipliers of the base rate, one value per optimizer step.

Plain functions of the step number (for ``torch.optim.lr_scheduler.LambdaLR``), so the
scheduler's checkpointed state is just its step count and resuming is exact.

- constant: 1 after warm-up.
- cosine: after warm-up, half a cosine from 1 down to 0 over the remaining steps.
- onecycle: a linear rise from 1/25 to 1 over the warm-up (30% of the steps when
  warmup_steps is 0), then a cosine down to 1/25/10⁴, as ``torch.optim.lr_scheduler.OneCycleLR``.

``warmup_steps`` (constant, cosine) ramps linearly from 1/warmup_steps to 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_ONECYCLE_START = 1 / 25
_ONECYCLE_END = _ONECYCLE_START / 1e4
_ONECYCLE_RISE = 0.3


def _cosine(progress: float, high: float, low: float) -> float:
    progress = min(1.0, max(0.0, progress))
    return low + (high - low) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_multiplier(kind: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """``f(step) -> multiplier`` for step 0, 1, ... of total_steps."""
    total = max(1, total_steps)
    if kind == "onecycle":
        rise = warmup_steps or max(1, int(_ONECYCLE_RISE * total))

        def onecycle(step: int) -> float:
            if step < rise:
                return _ONECYCLE_START + (1 - _ONECYCLE_START) * step / rise
            return _cosine((step - rise) / max(1, total - rise), 1.0, _ONECYCLE_END)

        return onecycle

    def warm_then(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "cosine":
            return _cosine((step - warmup_steps) / max(1, total - warmup_steps), 1.0, 0.0)
        return 1.0

    return warm_then
