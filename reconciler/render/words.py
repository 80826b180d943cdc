"""The words every renderer uses for a change: one vocabulary, two grammatical forms.

``imperative`` suits tables ("re-snapshot"); ``participle`` suits sentences ("will be
re-snapshotted"). Kinds that hold data speak of snapshots, materialisation and training.
"""

from __future__ import annotations

from reconciler.plan.model import Action

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
