"""Budget on the aws provider: an AWS Budget (cost) with a notification at each threshold.

The budget is named ``<name>.pipeform-<lineage's first 8 hex digits>``: AWS Budgets keeps
no tags that an emulator can read back, and a budget has no description, so its name is the
ownership mark. A create that finds a budget of that name adopts it (a create retried after
a crash), and two states never write each other's budget. ``amount``, ``currency`` and
``period`` become the budget's limit and time unit (weekly is not an AWS period: refused),
``scope.labels`` a cost filter on cost allocation tags (``TagKeyValue``: ``user:<key>$<value>``),
``thresholds`` one ACTUAL, GREATER_THAN, PERCENTAGE notification each, sent to
``providers.aws.budgetSubscribers`` (emails or SNS topic ARNs). ``enforce`` stays a
plan-time check of pipeform's own.

Budgets has UpdateBudget, but an emulator (moto) answers it with HTTP 500, and notifications
change through their own calls: an update here deletes the budget and creates it again with
the new limit and notifications. Spend already recorded by AWS is computed from cost data,
so nothing is lost but the budget's history page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from providers.aws.kind import AwsHandler
from providers.aws.session import error_code, failure
from providers.base import (
    JSON,
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    PermanentError,
    ReadRequest,
    ReadResponse,
    ResourceContext,
)
from providers.handlers import inner_spec
from reconciler.diagnostics import Diagnostic, error
from reconciler.kinds.quantities import parse_money

SERVICE = "budgets"
TIME_UNITS = {
    "daily": "DAILY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "yearly": "ANNUALLY",
}
NOT_FOUND = "NotFoundException"


def budget_name(ctx: ResourceContext) -> str:
    return f"{ctx.name}.pipeform-{ctx.lineage.replace('-', '')[:8] or 'none'}"


def desired(spec: JSON) -> JSON:
    """What the budget should look like, in the terms ``observe`` reads back."""
    labels = (spec.get("scope") or {}).get("labels") or {}
    return {
        "limit": _amount(parse_money(spec["amount"])),
        "currency": spec.get("currency", "USD"),
        "timeUnit": TIME_UNITS.get(str(spec.get("period", "monthly")), "?"),
        "costFilters": {"TagKeyValue": [f"user:{k}${v}" for k, v in sorted(labels.items())]}
        if labels
        else {},
        "thresholds": sorted(float(t) for t in spec.get("thresholds") or []),
    }


def _amount(value: Any) -> str:
    """A money amount as AWS writes it back (no trailing zeros, no exponent)."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text if "." in text else f"{text}.0"


class BudgetHandler(AwsHandler):
    kind = "Budget"

    def validate(self, ctx: ResourceContext, spec: JSON) -> list[Diagnostic]:
        inner = inner_spec(spec)
        found = []
        if inner.get("period") not in TIME_UNITS:
            found.append(
                error(
                    f"AWS Budgets has no {inner.get('period')} period; use daily, monthly, "
                    "quarterly or yearly",
                    address=ctx.address,
                    path="spec.period",
                )
            )
        if inner.get("thresholds") and not self.settings.budget_subscribers:
            found.append(
                error(
                    "a Budget on the aws provider notifies at its thresholds, and nobody is "
                    "named to notify",
                    address=ctx.address,
                    hint="set providers.aws.budgetSubscribers in the Workspace (emails or SNS "
                    "topic ARNs), or thresholds: []",
                )
            )
        return found

    def _client(self) -> Any:
        return self.clients.client(SERVICE)

    def observe(self, name: str) -> JSON | None:
        """The live budget in ``desired`` terms, None when there is none."""
        account = self.clients.account_id()
        try:
            budget = self._client().describe_budget(AccountId=account, BudgetName=name)["Budget"]
            notes = self._client().describe_notifications_for_budget(
                AccountId=account, BudgetName=name
            )["Notifications"]
        except Exception as exc:
            if error_code(exc) == NOT_FOUND:
                return None
            raise failure(exc, SERVICE, "DescribeBudget", f"reading budget {name!r}") from None
        limit = budget.get("BudgetLimit") or {}
        filters = {k: sorted(v) for k, v in (budget.get("CostFilters") or {}).items() if v}
        return {
            "limit": _amount(limit.get("Amount", "0")),
            "currency": limit.get("Unit"),
            "timeUnit": budget.get("TimeUnit"),
            "costFilters": filters,
            "thresholds": sorted(float(n["Threshold"]) for n in notes),
        }

    def read(self, request: ReadRequest) -> ReadResponse:
        name = request.external_id or budget_name(request.ctx)
        observed = self.observe(name)
        if observed is None:
            return ReadResponse(exists=False)
        return ReadResponse(True, observed, self._outputs(name, observed), name)

    def _outputs(self, name: str, observed: JSON) -> JSON:
        account = self.clients.account_id()
        return {
            "budgetName": name,
            "arn": f"arn:aws:budgets::{account}:budget/{name}",
            "amount": observed["limit"],
            "currency": observed["currency"],
        }

    def _create(self, name: str, want: JSON) -> None:
        budget: JSON = {
            "BudgetName": name,
            "BudgetLimit": {"Amount": want["limit"], "Unit": want["currency"]},
            "TimeUnit": want["timeUnit"],
            "BudgetType": "COST",
        }
        if want["costFilters"]:
            budget["CostFilters"] = want["costFilters"]
        subscribers = [_subscriber(s) for s in self.settings.budget_subscribers]
        notifications = [
            {
                "Notification": {
                    "NotificationType": "ACTUAL",
                    "ComparisonOperator": "GREATER_THAN",
                    "Threshold": threshold,
                    "ThresholdType": "PERCENTAGE",
                },
                "Subscribers": subscribers,
            }
            for threshold in want["thresholds"]
        ]
        try:
            self._client().create_budget(
                AccountId=self.clients.account_id(),
                Budget=budget,
                NotificationsWithSubscribers=notifications,
            )
        except Exception as exc:
            raise failure(exc, SERVICE, "CreateBudget", f"creating budget {name!r}") from None

    def _delete(self, name: str) -> None:
        try:
            self._client().delete_budget(AccountId=self.clients.account_id(), BudgetName=name)
        except Exception as exc:
            if error_code(exc) != NOT_FOUND:
                raise failure(exc, SERVICE, "DeleteBudget", f"deleting budget {name!r}") from None

    def _write(self, request: ApplyRequest) -> ApplyResponse:
        spec = inner_spec(request.spec)
        problems = self.validate(request.ctx, request.spec)
        if problems:
            raise PermanentError(problems[0].message)
        name = request.external_id or budget_name(request.ctx)
        want = desired(spec)
        live = self.observe(name)
        if live != want:  # our own (the name holds the lineage): replace it in full
            if live is not None:
                self._delete(name)
            self._create(name, want)
            live = self.observe(name)
            if live is None:
                raise PermanentError(f"budget {name!r} was created but cannot be read back")
        return ApplyResponse(self._outputs(name, live), name, live)

    def create(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def update(self, request: ApplyRequest) -> ApplyResponse:
        return self._write(request)

    def delete(self, request: DeleteRequest) -> None:
        self._delete(request.external_id or budget_name(request.ctx))


def _subscriber(address: str) -> JSON:
    kind = "SNS" if address.startswith("arn:") else "EMAIL"
    return {"SubscriptionType": kind, "Address": address}
