"""The prometheus provider: Alert and SLO documents as groups in a Prometheus rules file.

Each resource is one rule group (named after its address) in the Workspace's rules file,
``<rulesDir>/pipeform-<workspace>.rules.yml`` (rulesDir relative to the spec tree), built
by ``providers.rules``. Without ``url`` the file is the live state; with ``url`` every
change is followed by ``POST <url>/-/reload`` and a read of ``/api/v1/rules`` until the
group shows as written, and reads observe the group as Prometheus reports it. The
observed value is the group's rules (normalised), so a hand edit shows as drift.

Beside the rules file, the Workspace's Grafana dashboards (executive, on-call, debug;
``providers.prometheus.dashboards``) are rewritten in ``dashboardsDir`` after every change
to the rules file and removed with it (destroy).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from providers import rules
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ImportRequest,
    ImportResponse,
    ListOwnedRequest,
    ListOwnedResponse,
    OwnedObject,
    PermanentError,
    Provider,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.prometheus import promtool, rulesfile
from providers.prometheus.rulesfile import RulesFile
from reconciler.diagnostics import Diagnostic, error

if TYPE_CHECKING:  # the HTTP client loads only when a Prometheus URL is configured
    from providers.prometheus.server import PrometheusServer

KINDS = frozenset({"Alert", "SLO", "Budget"})


def normalise(rule: JSON) -> JSON:
    """A rule as a file holds it, in one canonical shape (durations, empty maps left out)."""
    out: JSON = {}
    for key in ("alert", "record"):
        if key in rule:
            out[key] = str(rule[key])
    out["expr"] = str(rule.get("expr", "")).strip()
    if rule.get("for"):
        try:
            duration = rules.prom_duration(rule["for"])
        except rules.RuleError:
            duration = str(rule["for"])
        if duration != "0s":
            out["for"] = duration
    for key in ("labels", "annotations"):
        value = rule.get(key)
        if isinstance(value, dict) and value:
            out[key] = {str(k): str(v) for k, v in sorted(value.items())}
    return out


def observed_of(rule_list: list[JSON]) -> JSON:
    """What is compared for drift: the group's rules by name (``#2`` on a repeated name),
    so a plan shows which rule changed and which field (``rules.ApiErrors.expr``)."""
    by_name: JSON = {}
    for rule in rule_list:
        rule = normalise(rule)
        name = str(rule.get("alert") or rule.get("record"))
        key, n = name, 1
        while key in by_name:
            n += 1
            key = f"{name}#{n}"
        by_name[key] = rule
    return {"rules": by_name}


class PrometheusProvider(Provider):
    name: ClassVar[str] = "prometheus"
    kinds: ClassVar[frozenset[str]] = KINDS

    def __init__(self, config: JSON | None = None, root: Path | None = None) -> None:
        super().__init__(config, root)
        rules_dir = Path(str(self.config.get("rulesDir") or ".pipeform/rules"))
        self.rules_dir = rules_dir if rules_dir.is_absolute() else self.root / rules_dir
        workspace = self.config.get("workspace") or {}
        self.workspace = str(workspace.get("name") or "default")
        self.path = self.rules_dir / f"pipeform-{self.workspace}.rules.yml"
        self.require_promtool = self.config.get("requirePromtool") is True
        dashboards_dir = Path(str(self.config.get("dashboardsDir") or ".pipeform/dashboards"))
        self.dashboards_dir = (
            dashboards_dir if dashboards_dir.is_absolute() else self.root / dashboards_dir
        )
        url = self.config.get("url")
        self.server: PrometheusServer | None = None
        if url:
            from providers.prometheus.server import PrometheusServer

            self.server = PrometheusServer(str(url))

    # --- helpers ---------------------------------------------------------------------

    @property
    def shown(self) -> str:
        """The rules file as the user knows it: relative to the spec tree when inside it."""
        try:
            return self.path.relative_to(self.root).as_posix()
        except ValueError:
            return str(self.path)

    def _group(self, ctx: ResourceContext, document: JSON) -> JSON:
        if ctx.kind not in KINDS:
            raise PermanentError(f"the prometheus provider does not realise {ctx.kind} resources")
        try:
            return rules.rule_group(ctx.address, document)
        except rules.RuleError as exc:
            raise PermanentError(f"{ctx.address}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"{ctx.address}: the spec cannot become rules ({exc})") from None

    def _outputs(self, group: JSON) -> JSON:
        names = [r.get("alert") for r in group.get("rules", []) if r.get("alert")]
        return {
            "file": self.shown,
            "group": group.get("name"),
            "rules": len(group.get("rules", [])),
            "alerts": sorted({str(n) for n in names}),
        }

    def _current(self) -> RulesFile | None:
        """The rules file as it is now, parsed once per version of it: refresh reads one
        group per Alert, SLO and Budget, and they all live in this one file."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self.__dict__.get("_parsed")
        if cached is not None and cached[0] == version:
            parsed: RulesFile = cached[1]
            return parsed
        current = rulesfile.read(self.path, self.shown)
        if current is not None:
            self.__dict__["_parsed"] = (version, current)
        return current

    def _observe_file(self, name: str) -> JSON | None:
        current = self._current()
        group = current.group(name) if current else None
        if group is None:
            return None
        raw = group.get("rules")
        return observed_of([r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else [])

    def _observe(self, name: str) -> JSON | None:
        if self.server is None:
            return self._observe_file(name)
        from providers.prometheus.server import normalised_rules

        group = self.server.groups().get(name)
        return observed_of(normalised_rules(group)) if group else None

    @contextlib.contextmanager
    def _editing(self) -> Iterator[RulesFile]:
        """The rules file under the lock; written back (checked) when the block succeeds."""
        rulesfile.ensure_dir(self.rules_dir)
        with rulesfile.locked(self.rules_dir):
            current = rulesfile.read(self.path, self.shown) or RulesFile()
            before = rulesfile.render(current, self.workspace)
            yield current
            if not current.groups:
                rulesfile.remove(self.path)
            elif rulesfile.render(current, self.workspace) != before or not self.path.exists():
                rulesfile.write(
                    self.path,
                    rulesfile.render(current, self.workspace),
                    lambda tmp: promtool.check_rules(tmp, self.shown, self.require_promtool),
                )

    def _dashboards(self, lineage: str) -> None:
        """The Workspace's dashboards follow its rules file: written while it exists,
        removed with it. grafana-foundation-sdk loads only here."""
        from providers.prometheus import dashboards

        keep = self.path.exists()
        if not keep and not self.dashboards_dir.is_dir():
            return
        with (
            rulesfile.locked(self.rules_dir)
            if self.rules_dir.is_dir()
            else contextlib.nullcontext()
        ):
            dashboards.sync(self.dashboards_dir, self.workspace, lineage, keep=keep, root=self.root)

    def _not_ours(self, ctx: ResourceContext, current: RulesFile, name: str) -> PermanentError:
        owner = current.owners.get(name)
        whose = (
            f"the state with lineage {owner}"
            if owner
            else "nothing pipeform manages (it has no pipeform-owner line)"
        )
        return PermanentError(
            f"{self.shown} already holds a rule group {name!r} that belongs to {whose}, not to "
            f"{ctx.address} in this state (lineage {ctx.lineage}), so it is left alone. To manage "
            f"it from here, run: pipeform import {ctx.address} {name}"
        )

    def _loaded(self, name: str, group: JSON | None) -> None:
        """After a change: reload Prometheus and wait until it shows the group as written."""
        if self.server is None:
            return
        self.server.reload()
        wanted = [str(r.get("alert") or r.get("record")) for r in group["rules"]] if group else None
        seen = self.server.wait_for(name, wanted)
        got = [str(r.get("name")) for r in seen.get("rules", [])] if seen else None
        if got != wanted:
            state = "still shows" if group is None else "does not show"
            raise PermanentError(
                f"Prometheus at {self.server.url} {state} rule group {name!r} after reloading; "
                f"check that its rule_files include {self.rules_dir}/*.rules.yml "
                f"(the file is {self.shown})"
            )

    # --- the provider protocol -------------------------------------------------------

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        if ctx.kind not in KINDS:
            return [error(f"the prometheus provider does not realise {ctx.kind} resources")]
        try:
            rules.rule_group(ctx.address, spec)
        except rules.RuleError as exc:
            return [error(str(exc).removeprefix(f"{ctx.address}: "), address=ctx.address)]
        return []

    def read(self, request: ReadRequest) -> ReadResponse:
        name = request.external_id or request.ctx.address
        observed = self._observe(name)
        if observed is None:
            return ReadResponse(exists=False)
        outputs = {**request.outputs, "file": self.shown, "group": name}
        return ReadResponse(True, observed, outputs, name)

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        ctx = request.ctx
        name = request.external_id or ctx.address
        group = {**self._group(ctx, request.spec), "name": name}
        with self._editing() as current:
            if current.group(name) is not None and current.owners.get(name) != ctx.lineage:
                raise self._not_ours(ctx, current, name)
            current.put(group, ctx.lineage)
        self._dashboards(ctx.lineage)
        self._loaded(name, group)
        observed = self._observe(name) if self.server else observed_of(group["rules"])
        return ApplyResponse(self._outputs(group), name, observed or {})

    def create(self, request: ApplyRequest) -> ApplyResponse:
        # a group of ours already there (a create retried after a crash) is adopted
        return self._write(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def delete(self, request: DeleteRequest) -> None:
        name = request.external_id or request.ctx.address
        if not self.rules_dir.is_dir():
            return
        with self._editing() as current:
            if current.group(name) is None:
                return
            if current.owners.get(name) != request.ctx.lineage:
                raise self._not_ours(request.ctx, current, name)
            current.drop(name)
        self._dashboards(request.ctx.lineage)
        self._loaded(name, None)

    def import_(self, request: ImportRequest) -> ImportResponse:
        name = request.id
        if not self.path.exists():
            raise PermanentError(f"there is no rules file {self.shown} to import {name!r} from")
        with self._editing() as current:
            group = current.group(name)
            if group is None:
                raise PermanentError(f"{self.shown} holds no rule group {name!r} to import")
            current.owners[name] = request.ctx.lineage
        observed = self._observe(name) or {}
        return ImportResponse(observed, None, self._outputs(group), name)

    def list_owned(self, request: ListOwnedRequest) -> ListOwnedResponse:
        """The rule groups the rules file's owner lines give to a pipeform state."""
        current = self._current()
        owners = sorted(current.owners.items()) if current is not None else []
        return ListOwnedResponse(
            [OwnedObject(name, lineage, name, f"{self.shown} ({name})") for name, lineage in owners]
        )


__all__ = ["PrometheusProvider", "normalise", "observed_of"]
