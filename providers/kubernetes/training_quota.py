"""Whether a training run fits its namespace's ResourceQuota: never, not now, or now.

Pure: from the live ResourceQuota as ``providers.kubernetes.quota.live_quota`` reads it
(``{"hard": ..., "used": ...}``) and what the run asks for in all (per worker, times workers per node,
times nodes), the limits it could never fit within and the ones it waits on while other
work holds them. Memory and cpu are compared as the API server counts them (``requests.*``
and ``limits.*``, which pipeform sets equal; a bare ``cpu``/``memory`` is ``requests.*``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from providers.base import JSON
from providers.local.training_config import GIB, JobResources
from reconciler.kinds.quantities import parse_cpu, parse_memory, parse_quantity

GPU = "nvidia.com/gpu"


def _asked(asked: JobResources) -> dict[str, tuple[Decimal, Callable[[object], Decimal], str]]:
    """hard key -> (amount asked in all, its parser, its unit in words)."""
    pods = asked.workers * asked.nodes
    cpu = Decimal(str(asked.cpu)) * pods
    memory = Decimal(round(asked.memory_gib * GIB)) * pods
    gpus = Decimal(asked.gpus * pods)

    def as_memory(value: object) -> Decimal:
        return Decimal(parse_memory(value))

    out: dict[str, tuple[Decimal, Callable[[object], Decimal], str]] = {}
    for prefix in ("requests.", "limits.", ""):
        out[f"{prefix}cpu"] = (cpu, parse_cpu, "CPU cores")
        out[f"{prefix}memory"] = (memory, as_memory, "bytes of memory")
    out[f"requests.{GPU}"] = (gpus, parse_quantity, "GPUs")
    out["count/jobs.batch"] = (Decimal(1 if asked.nodes == 1 else 0), parse_quantity, "Jobs")
    return out


def _shown(amount: Decimal, unit: str) -> str:
    if unit == "bytes of memory":
        return f"{amount / GIB:g}Gi memory"
    return f"{amount:g} {unit}"


#: a limit the API server enforces when the Job is made (refused then), not its pods
#: (which the Job controller keeps trying to make until they fit)
CREATE_TIME = frozenset({"count/jobs.batch"})


def quota_fit(live: JSON, asked: JobResources) -> tuple[list[str], list[str], list[str]]:
    """(limits it can never fit within, limits its pods wait on now, limits that refuse
    the Job itself now), each in words."""
    hard, used = dict(live.get("hard") or {}), dict(live.get("used") or {})
    never: list[str] = []
    waits: list[str] = []
    full: list[str] = []
    for key, (amount, parse, unit) in _asked(asked).items():
        if key not in hard or not amount:
            continue
        try:
            limit = parse(hard[key])
            in_use = parse(used.get(key, "0"))
        except (ValueError, ArithmeticError):
            continue
        if amount > limit:
            never.append(f"asks {_shown(amount, unit)}, {key} allows {_shown(limit, unit)}")
        elif amount + in_use > limit:
            said = f"{key}: {_shown(in_use, unit)} of {_shown(limit, unit)} in use"
            (full if key in CREATE_TIME else waits).append(said)
    return never, waits, full
