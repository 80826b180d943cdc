"""A plan is data: the resource changes and drift that apply would act on.

Modelled on Terraform's ``internal/plans``: a ``Plan`` holds ``ResourceChange``s, each
an ``Action`` with ``before``/``after`` values and per-field changes. The reason only
explains the change to people; apply never branches on it. Renderers (text, JSON,
Markdown) are separate modules over this data. Plans are saved to a file, reloaded, and
refused when the state (lineage, serial) or the specs (digest) moved since.

A plan also carries what ``reconciler.plan.cost`` and ``reconciler.plan.policy`` found: a cost
estimate per training change and totals per currency, the prices they used (so apply
records actual run costs at the same prices), and the policy verdict (budgets, quotas,
required labels). Amounts are decimal strings, never floats.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

FORMAT_VERSION = "1.0"
UNKNOWN = "(known after apply)"
SENSITIVE = "(sensitive)"


class Action(enum.StrEnum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE_THEN_CREATE = "delete-then-create"
    CREATE_THEN_DELETE = "create-then-delete"
    DELETE = "delete"
    READ = "read"

    @property
    def is_replace(self) -> bool:
        return self in (Action.DELETE_THEN_CREATE, Action.CREATE_THEN_DELETE)

    @property
    def terraform_actions(self) -> list[str]:
        """The ``change.actions`` list of ``terraform show -json``."""
        return {
            Action.NOOP: ["no-op"],
            Action.CREATE: ["create"],
            Action.UPDATE: ["update"],
            Action.DELETE_THEN_CREATE: ["delete", "create"],
            Action.CREATE_THEN_DELETE: ["create", "delete"],
            Action.DELETE: ["delete"],
            Action.READ: ["read"],
        }[self]


class Reason(enum.StrEnum):
    NEW = "new resource"
    INTERRUPTED = "an interrupted create is resumed"
    SPEC_CHANGED = "spec changed"
    INPUT_CHANGED = "input changed"
    REPLACE_REQUESTED = "replace requested"
    REPLACE_BY_FIELDS = "a changed field forces replacement"
    GONE = "deleted outside pipeform"
    DRIFTED = "changed outside pipeform"
    REMOVED = "removed from specs"
    TAINTED = "tainted by a failed apply"
    FAILED = "its last apply failed"
    PENDING = "a step left waiting can be taken"
    DESTROY = "destroy requested"
    NONE = ""


@dataclass(frozen=True)
class FieldChange:
    path: str  # dotted, from the document root (spec.hyperparameters.learningRate)
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False


#: Decimal's context for money. The largest spec pipeform accepts (prices below 10^15, a
#: million cores, 1Ei, 1024 GPUs, 1024 x 1024 workers, 3650d) costs about 10^35 a run;
#: 60 digits keep such an amount to 6 places, and sums and percentages of them exact,
#: where Decimal's default of 28 digits cannot even round them (InvalidOperation).
MONEY_CONTEXT = Context(prec=60)


def cents(amount: str | Decimal) -> str:
    """An amount rounded to cents for display: ``"4.484"`` -> ``"4.48"``."""
    return str(
        Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP, context=MONEY_CONTEXT)
    )


@dataclass(frozen=True)
class CostEstimate:
    """What one planned training run is expected to cost (see reconciler.plan.cost)."""

    amount: str  # decimal string, to 6 places; show it with cents()
    currency: str
    hours: str  # expected duration in hours
    hourly: str  # price of the whole job (every worker on every node) per hour
    basis: str  # where the hours come from: "median of 3 past runs" | "maxDuration 30m"
    workers: int = 1  # workers x nodes the hourly price covers


@dataclass(frozen=True)
class ResourceChange:
    address: str
    kind: str
    provider: str
    action: Action
    reason: Reason = Reason.NONE
    reason_detail: str = ""  # e.g. "input Dataset/rand-hie changed"
    before: dict[str, Any] | None = None  # redacted spec as applied
    after: dict[str, Any] | None = None  # redacted spec as desired
    after_unknown: list[str] = field(default_factory=list)  # outputs known after apply
    field_changes: list[FieldChange] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    sensitive_paths: list[str] = field(default_factory=list)
    inputs_fingerprint: str | None = None
    prevent_destroy: bool = False
    cost: CostEstimate | None = None  # set for TrainingJob changes that train
    #: what the create or update adopts instead of making anew, in the provider's words
    #: ("run 3f2a1b9c0d12 (no training)"): nothing is trained or built, and nothing costs
    adopts: str | None = None
    #: what waits on a person or a condition (a version awaiting approval, a held
    #: promotion), in the provider's words; listed by the plan, whatever the action
    waiting: str | None = None
    #: the objects the provider will apply (secret values masked), where it says
    #: (PlanResponse.manifests): plan --json shows them in change.after.manifests
    manifests: list[dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return self.address.split("/", 1)[1]


@dataclass(frozen=True)
class Drift:
    """A difference between what pipeform last applied and what is live."""

    address: str
    kind: str
    exists: bool
    field_changes: list[FieldChange] = field(default_factory=list)


@dataclass(frozen=True)
class Note:
    """Something a provider could not check where the plan ran, and what it kept instead."""

    address: str
    note: str


@dataclass(frozen=True)
class BudgetStatus:
    """One Budget against this plan: spend so far this period, and what the plan adds."""

    address: str
    amount: str
    currency: str
    period: str
    period_start: str  # UTC, RFC 3339
    period_end: str  # exclusive
    used: str  # recorded actual cost of runs in scope finished this period
    planned: str  # estimates of the planned training changes in scope
    percent: str | None  # (used + planned) / amount, in percent; None for a zero amount
    enforce: bool
    over: bool  # used + planned > amount
    thresholds_crossed: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PolicyFinding:
    """One policy verdict that is not a plain pass: an error, or a warning."""

    rule: str  # budget | quota | required-labels
    severity: str  # error | warning
    address: str
    message: str
    hint: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class PolicyReport:
    budgets: list[BudgetStatus] = field(default_factory=list)
    findings: list[PolicyFinding] = field(default_factory=list)
    passed: list[dict[str, str]] = field(default_factory=list)  # {"rule", "address"}
    allow_over_budget: bool = False

    @property
    def errors(self) -> list[PolicyFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[PolicyFinding]:
        return [f for f in self.findings if f.severity == "warning"]


@dataclass(frozen=True)
class Plan:
    lineage: str
    serial: int
    specs_digest: str
    created_at: str
    mode: str = "normal"  # normal | destroy | refresh-only
    changes: list[ResourceChange] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    format_version: str = FORMAT_VERSION
    cost_totals: dict[str, str] = field(default_factory=dict)  # currency -> decimal string
    #: the Workspace prices the estimates used (reconciler.plan.cost.pricing_json); None when
    #: nothing was estimated (destroy and refresh-only plans)
    pricing: dict[str, Any] | None = None
    policy: PolicyReport | None = None  # None: no policy was evaluated

    @property
    def actionable(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        return bool(self.actionable) or (self.mode == "refresh-only" and bool(self.drift))

    def counts(self) -> dict[str, int]:
        out = {"add": 0, "change": 0, "replace": 0, "destroy": 0}
        for change in self.changes:
            if change.action is Action.CREATE:
                out["add"] += 1
            elif change.action is Action.UPDATE:
                out["change"] += 1
            elif change.action.is_replace:
                out["replace"] += 1
            elif change.action is Action.DELETE:
                out["destroy"] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        return (
            f"Plan: {c['add']} to add, {c['change']} to change, "
            f"{c['replace']} to replace, {c['destroy']} to destroy."
        )

    def digest(self) -> str:
        """A content hash of what apply would do (journaled with every apply)."""
        body = json.dumps(to_dict(self), sort_keys=True, default=str).encode()
        return "sha256:" + hashlib.sha256(body).hexdigest()


def to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain data, for serialising at once: dataclasses become dicts, and the
    JSON values inside them (specs, field values) are shared rather than deep-copied as
    dataclasses.asdict would, which cost more than planning a thousand resources."""
    body: dict[str, Any] = _plain(plan)
    return body


def _plain(value: Any) -> Any:
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value  # JSON data (dicts of specs, strings, numbers) or an enum


def from_dict(data: dict[str, Any]) -> Plan:
    def change(c: dict[str, Any]) -> ResourceChange:
        return ResourceChange(
            **{
                **c,
                "action": Action(c["action"]),
                "reason": Reason(c["reason"]),
                "field_changes": [FieldChange(**f) for f in c["field_changes"]],
                "cost": CostEstimate(**c["cost"]) if c.get("cost") else None,
            }
        )

    def drift(d: dict[str, Any]) -> Drift:
        return Drift(**{**d, "field_changes": [FieldChange(**f) for f in d["field_changes"]]})

    def policy(p: dict[str, Any] | None) -> PolicyReport | None:
        if p is None:
            return None
        return PolicyReport(
            **{
                **p,
                "budgets": [BudgetStatus(**b) for b in p["budgets"]],
                "findings": [PolicyFinding(**f) for f in p["findings"]],
            }
        )

    return Plan(
        **{
            **data,
            "changes": [change(c) for c in data["changes"]],
            "drift": [drift(d) for d in data["drift"]],
            "notes": [Note(**n) for n in data.get("notes", [])],
            "policy": policy(data.get("policy")),
        }
    )
