"""Refresh: read every recorded object through its provider and report drift.

A difference between what an object's last apply observed and what its provider reads
now is drift (``Drift``); an object that is gone is drift too, unless its record is
*pending*: a create that an apply recorded but never finished (killed before or during
it) made nothing that could have been deleted, so nothing drifted; it is planned as a
create. Providers whose reads wait
on a server are read up to --parallelism at once. ``provider_call`` is the one wrapper
for provider calls made while planning: any failure becomes one clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from providers.base import Provider, ProviderError, ReadRequest, ReadResponse, ResourceContext
from reconciler.diagnostics import PipeformError
from reconciler.plan.diff import field_changes
from reconciler.plan.model import Drift
from reconciler.state.model import State, Status

if TYPE_CHECKING:
    from reconciler.plan.planner import Providers

T = TypeVar("T")
R = TypeVar("R")

#: Below this many objects, reading them one after another costs less than a thread pool.
PARALLEL_REFRESH_MIN = 8


def provider_call(provider: str, address: str, what: str, call: Callable[[R], T], request: R) -> T:
    """A provider call during planning; any failure becomes one clear error."""
    try:
        return call(request)
    except ProviderError as exc:
        raise PipeformError(f"{address}: provider {provider} could not {what} it: {exc}") from exc
    except Exception as exc:
        raise PipeformError(
            f"{address}: provider {provider} crashed during {what}: {type(exc).__name__}: {exc}"
        ) from exc


class Refresher:
    """Reads the recorded objects of one state (contexts made by the planner, shared)."""

    def __init__(
        self,
        state: State,
        providers: Providers,
        ctx: Callable[[str], ResourceContext],
        parallelism: int,
    ) -> None:
        self.state, self.providers, self.ctx, self.parallelism = state, providers, ctx, parallelism

    def read(self, address: str) -> ReadResponse:
        prior = self.state.resources[address]
        provider = self.providers.get(prior.provider, address)
        request = ReadRequest(self.ctx(address), prior.spec, prior.outputs, prior.external_id)
        return provider_call(prior.provider, address, "read", provider.read, request)

    def read_all(self, addresses: list[str]) -> list[ReadResponse]:
        """Every object's live state. Providers whose reads wait on a server
        (``Provider.concurrent_reads``) are read up to --parallelism at once, as Terraform
        refreshes, so a slow API costs its latency once per batch rather than once per
        object; the others are read in turn, since threads only add overhead to CPU-bound
        reads. The first failure is reported, as a sequential refresh would report it."""
        resources = self.state.resources
        order = list(addresses)
        batched = self._read_batches(addresses)
        addresses = [a for a in addresses if a not in batched]
        pooled = [
            a for a in addresses if self.providers.get(resources[a].provider, a).concurrent_reads
        ]
        workers = min(self.parallelism, len(pooled))
        if workers < 2 or len(pooled) < PARALLEL_REFRESH_MIN:
            return [batched.get(a) or self.read(a) for a in order]
        for address in pooled:  # contexts are shared: build them here, not in the threads
            self.ctx(address)
        import concurrent.futures as cf

        with cf.ThreadPoolExecutor(workers, thread_name_prefix="refresh") as pool:
            concurrent = dict(
                zip(pooled, pool.map(partial(Refresher.read, self), pooled), strict=True)
            )
        return [batched.get(a) or concurrent.get(a) or self.read(a) for a in order]

    def _read_batches(self, addresses: list[str]) -> dict[str, ReadResponse]:
        """What providers that read many objects at once (``Provider.read_batch``) observe,
        by address: one call per provider; the rest are read one by one."""
        resources = self.state.resources
        by_provider: dict[str, list[str]] = {}
        for address in addresses:
            by_provider.setdefault(resources[address].provider, []).append(address)
        found: dict[str, ReadResponse] = {}
        for name, group in sorted(by_provider.items()):
            provider = self.providers.get(name, group[0])
            if type(provider).read_batch is Provider.read_batch:
                continue
            requests = [
                ReadRequest(self.ctx(a), resources[a].spec, resources[a].outputs,
                            resources[a].external_id)
                for a in group
            ]  # fmt: skip
            where = group[0] if len(group) == 1 else f"{group[0]} and {len(group) - 1} more"
            responses = provider_call(name, where, "read", provider.read_batch, requests)
            if responses is None:
                continue
            if len(responses) != len(group):
                raise PipeformError(
                    f"provider {name} answered {len(responses)} reads for {len(group)} objects"
                )
            found.update(zip(group, responses, strict=True))
        return found

    def refresh(self, addresses: list[str], live: dict[str, ReadResponse]) -> list[Drift]:
        """Read every recorded object into ``live``; a difference from what was recorded
        is drift."""
        drift: list[Drift] = []
        for address, response in zip(addresses, self.read_all(addresses), strict=True):
            prior = self.state.resources[address]
            live[address] = response
            if not response.exists:
                if prior.status in (Status.PENDING, Status.DELETING):
                    continue  # never made, or its delete was interrupted: planned, not drift
                drift.append(Drift(address, prior.kind, exists=False))
            elif prior.observed and response.observed != prior.observed:
                changes = field_changes(prior.observed, response.observed)
                drift.append(Drift(address, prior.kind, True, changes))
        return drift
