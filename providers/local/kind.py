"""What one kind family of the local provider implements, so kinds plug in one module each.

``providers.local.LocalProvider`` dispatches every call to the handler registered for the
request's kind. A new kind (Dataset, TrainingJob, Alert...) is a subclass of
``KindHandler`` in its own module, added to ``providers.local.HANDLERS``.
"""

from __future__ import annotations

from typing import ClassVar

from providers import handlers
from providers.base import (
    OwnedObject,
)
from providers.handlers import inner_spec
from providers.local import files
from providers.local.settings import LocalSettings


class KindHandler(handlers.KindHandler):
    """The provider protocol for one kind, with the local provider's settings at hand."""

    provider: ClassVar[str] = "local"
    #: for a kind that cannot be imported: what to do instead, in words
    instead_of_import: ClassVar[str] = ""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings

    def owned_records(self) -> tuple[str, ...]:
        """Where this kind's records live: glob patterns under the data directory. The id
        of an object is the part the last ``*`` matches (``quotas/*.json``: the file's
        name; ``datasets/*/current.json``: the directory's)."""
        return ()

    def owned(self) -> list[OwnedObject]:
        """The records of this kind that carry ownership labels (any lineage)."""
        found = []
        for pattern in self.owned_records():
            by_file = "*" in pattern.rsplit("/", 1)[-1]
            for path in sorted(self.settings.data_dir.glob(pattern)):
                labels = files.owner_labels(path)
                if labels is not None:
                    object_id = path.stem if by_file else path.parent.name
                    found.append(OwnedObject(*labels, object_id, self.settings.shown(path)))
        return found


__all__ = ["KindHandler", "inner_spec"]
