"""The aws provider: Secret -> Secrets Manager, Budget -> AWS Budgets, Alert -> CloudWatch.

Its settings are the Workspace's ``providers.aws`` block (region, profile, an endpoint for
every service or one per service: ``providers.aws.session``). Each kind is one module with
a handler (``secrets``, ``budgets``, ``alarms``); this module dispatches the provider calls.
Every object carries the ownership tags, so a create retried after a crash adopts what the
first one made. ``s3://`` Dataset sources are read by the local provider's data plane with
these same settings (``providers.aws.s3source``). boto3 loads with the first call that
needs AWS, never at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from providers.aws.alarms import AlarmHandler
from providers.aws.budgets import BudgetHandler
from providers.aws.kind import AwsHandler
from providers.aws.secrets import SecretHandler
from providers.aws.session import AwsSettings, Clients
from providers.base import (
    JSON,
    PermanentError,
    Provider,
)
from providers.handlers import Dispatching

HANDLERS: Mapping[str, type[AwsHandler]] = {
    handler.kind: handler for handler in (AlarmHandler, BudgetHandler, SecretHandler)
}


class AwsProvider(Dispatching, Provider):
    name: ClassVar[str] = "aws"
    kinds: ClassVar[frozenset[str]] = frozenset(HANDLERS)
    replace_on: ClassVar[Mapping[str, frozenset[str]]] = {
        kind: handler.replace_on for kind, handler in HANDLERS.items()
    }
    computed_outputs: ClassVar[Mapping[str, tuple[str, ...]]] = {
        kind: handler.computed_outputs for kind, handler in HANDLERS.items()
    }
    concurrent_reads: ClassVar[bool] = True  # every read waits on an AWS API

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        super().__init__(config, root)
        self.settings = AwsSettings.from_config(self.config)
        self.clients = Clients(self.settings)
        self._handlers: dict[str, AwsHandler] = {}

    def handler(self, kind: str) -> AwsHandler:
        if kind not in self._handlers:
            cls = HANDLERS.get(kind)
            if cls is None:
                raise PermanentError(
                    f"the aws provider cannot realise {kind} resources "
                    f"(it realises {', '.join(sorted(HANDLERS))})"
                )
            self._handlers[kind] = cls(self.settings, self.clients)
        return self._handlers[kind]


__all__ = ["HANDLERS", "AwsProvider"]
