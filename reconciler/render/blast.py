"""A change's blast radius: what it sets off downstream, for the pull-request comment.

A Dataset's new snapshot re-materialises the FeatureSets built from it and retrains their
models; a FeatureSet's change retrains its models. Only data dependencies count: a Quota
or Secret a job names sets nothing off.
"""

from __future__ import annotations

from reconciler.plan.model import Reason
from reconciler.plan.model import ResourceChange as Change

#: how a downstream change is named in a blast radius, by kind
SET_OFF = {"FeatureSet": "re-materialises", "TrainingJob": "retrains", "Dataset": "re-snapshots"}
BLAST_NAMES = 3  # names shown per kind; the rest are counted
DATA_KINDS = frozenset({"Dataset", "FeatureSet", "TrainingJob"})  # whose outputs are inputs


def blast_radius(changes: list[Change]) -> dict[str, list[Change]]:
    """For each change, the changes it sets off: those planned because an input changed,
    following data dependencies through each other."""
    caused = {c.address: c for c in changes if c.reason is Reason.INPUT_CHANGED}
    dependents: dict[str, list[str]] = {}
    for c in caused.values():
        for dep in c.dependencies:  # inputs are data: a Quota or Secret sets nothing off
            if dep.split("/", 1)[0] in DATA_KINDS:
                dependents.setdefault(dep, []).append(c.address)
    out: dict[str, list[Change]] = {}
    for root in changes:
        seen: dict[str, Change] = {}
        todo = list(dependents.get(root.address, ()))
        while todo:
            address = todo.pop()
            if address not in seen:
                seen[address] = caused[address]
                todo += dependents.get(address, ())
        if seen:
            out[root.address] = sorted(seen.values(), key=lambda c: c.address)
    return out


def blast_text(set_off: list[Change]) -> str:
    """``re-materialises FeatureSet/visits; retrains 2 models (a, b)``."""
    parts = []
    for kind in sorted({c.kind for c in set_off}, key=lambda k: (k not in SET_OFF, k)):
        names = [c.name for c in set_off if c.kind == kind]
        shown = ", ".join(names[:BLAST_NAMES]) + (
            f" and {len(names) - BLAST_NAMES} more" if len(names) > BLAST_NAMES else ""
        )
        verb = SET_OFF.get(kind, "changes")
        parts.append(f"{verb} {len(names)} {kind}{'s' if len(names) != 1 else ''} ({shown})")
    return "; ".join(parts)
