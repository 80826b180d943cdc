"""What one kind of the aws provider implements, and the ownership checks they share.

``providers.aws.AwsProvider`` dispatches every call to the handler registered for the
request's kind (``secrets``, ``budgets``, ``alarms``). Every object the provider makes
carries the ownership tags (``pipeform.dev/address``, ``pipeform.dev/lineage``): a create
that finds an object of ours adopts it, one of another state is refused with a pointer to
``pipeform import``.
"""

from __future__ import annotations

from typing import ClassVar

from providers import handlers
from providers.aws.session import AwsSettings, Clients
from providers.base import (
    OWNER_ADDRESS,
    OWNER_LINEAGE,
    ResourceContext,
)


class AwsHandler(handlers.KindHandler):
    """The provider protocol for one kind, with the aws provider's settings and clients."""

    provider: ClassVar[str] = "aws"

    def __init__(self, settings: AwsSettings, clients: Clients) -> None:
        self.settings = settings
        self.clients = clients


def owner(tags: dict[str, str]) -> tuple[str, str] | None:
    """(address, lineage) from an object's tags, None when pipeform did not make it."""
    if OWNER_ADDRESS in tags and OWNER_LINEAGE in tags:
        return tags[OWNER_ADDRESS], tags[OWNER_LINEAGE]
    return None


def is_ours(tags: dict[str, str], ctx: ResourceContext) -> bool:
    return owner(tags) == (ctx.address, ctx.lineage)


def claim(tags: dict[str, str], ctx: ResourceContext, what: str, external_id: str) -> None:
    """Refuse to take over an object that is not this resource's (of this state)."""
    handlers.claim_owned(owner(tags), ctx, what, external_id)
