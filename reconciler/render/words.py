"""The words every renderer uses for a change: one vocabulary, two grammatical forms.

``imperative`` suits tables ("re-snapshot"); ``participle`` suits sentences ("will be
re-snapshotted"); ``will`` and ``label`` say "adopt" for a change that adopts what
already exists instead of making it. Kinds that hold data speak of snapshots, materialisation and training.
"""

from __future__ import annotations

from reconciler.plan.model import Action, ResourceChange

ACTIONS: dict[Action, tuple[str, str]] = {
    Action.CREATE: ("create", "created"),
    Action.UPDATE: ("update", "updated in place"),
    Action.DELETE: ("destroy", "destroyed"),
    Action.DELETE_THEN_CREATE: ("replace", "replaced"),
    Action.CREATE_THEN_DELETE: ("replace", "replaced (create first)"),
    Action.READ: ("read", "read"),
    Action.NOOP: ("no change", "unchanged"),
}
_DATA_WORDS = {
    "Dataset": (("snapshot", "snapshotted"), ("re-snapshot", "re-snapshotted")),
    "FeatureSet": (("materialise", "materialised"), ("re-materialise", "re-materialised")),
    "TrainingJob": (("train", "trained"), ("retrain", "retrained")),
}
KINDS: dict[tuple[str, Action], tuple[str, str]] = {}
for _kind, (_first, _again) in _DATA_WORDS.items():
    KINDS[(_kind, Action.CREATE)] = _first
    KINDS[(_kind, Action.UPDATE)] = _again
    KINDS[(_kind, Action.DELETE_THEN_CREATE)] = _again


def _words(kind: str, action: Action) -> tuple[str, str]:
    return KINDS.get((kind, action), ACTIONS[action])


def imperative(kind: str, action: Action) -> str:
    return _words(kind, action)[0]


def participle(kind: str, action: Action) -> str:
    return _words(kind, action)[1]


def will(change: ResourceChange) -> str:
    """What apply will do, as a sentence's verb: "will be retrained", or, when it adopts
    what already exists, "will adopt run 3f2a1b9c0d12 (no training)"."""
    if change.adopts:
        return f"will adopt {change.adopts}"
    return "will be " + participle(change.kind, change.action)


def label(change: ResourceChange) -> str:
    """What apply will do, for a table cell: "retrain", or "adopt" when it adopts."""
    return "adopt" if change.adopts else imperative(change.kind, change.action)
