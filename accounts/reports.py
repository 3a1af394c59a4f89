"""Usage summed for the pages, read from the daily rollup so they stay fast at millions of records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import F, Q, QuerySet, Sum

from accounts.models import UsageDaily

# Outcomes as a reader groups them: the caller's fault, ours, or nobody's.
OUTCOME_GROUPS = {
    "ok": "ok",
    "client_cancelled": "cancelled",
    "bad_request": "rejected",
    "rejected_auth": "rejected",
    "rejected_quota": "rejected",
    "upstream_error": "failed",
    "executor_lost": "failed",
    "timeout": "failed",
    "unavailable": "failed",
}
FAILED = [outcome for outcome, group in OUTCOME_GROUPS.items() if group == "failed"]
REJECTED = [outcome for outcome, group in OUTCOME_GROUPS.items() if group == "rejected"]

TOKENS = F("prompt_tokens") + F("candidates_tokens") + F("thoughts_tokens")


@dataclass
class DayUsage:
    day: date
    requests: int = 0
    tokens: int = 0
    by_group: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "rejected", "failed", "cancelled"), 0)
    )
    tokens_by_model: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.by_group["failed"] / self.requests if self.requests else 0.0


@dataclass
class Period:
    first: date
    last: date

    @classmethod
    def last_days(cls, days: int) -> Period:
        today = datetime.now(UTC).date()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def _rows(period: Period, user_id: int | None = None) -> QuerySet[UsageDaily]:
    rows = UsageDaily.objects.filter(day__gte=period.first, day__lte=period.last)
    return rows if user_id is None else rows.filter(user_id=user_id)


def daily(period: Period, user_id: int | None = None) -> list[DayUsage]:
    """One entry per day of the period (zeros included), with outcome groups and tokens per model."""
    days = {day: DayUsage(day) for day in period.days}
    grouped = (
        _rows(period, user_id)
        .values("day", "outcome", "model")
        .annotate(requests=Sum("requests"), tokens=Sum(TOKENS))
        .order_by()
    )
    for row in grouped:
        entry = days[row["day"]]
        entry.requests += row["requests"]
        entry.tokens += row["tokens"]
        entry.by_group[OUTCOME_GROUPS.get(row["outcome"], "failed")] += row["requests"]
        if row["tokens"]:
            entry.tokens_by_model[row["model"]] = entry.tokens_by_model.get(row["model"], 0) + row["tokens"]
    return list(days.values())


def _ranked(period: Period, by: str, limit: int, user_id: int | None = None) -> list[dict]:
    return list(
        _rows(period, user_id)
        .values(by)
        .annotate(
            # Before "requests" is an annotation, while it still names the column.
            failed=Sum("requests", filter=Q(outcome__in=FAILED)),
            rejected=Sum("requests", filter=Q(outcome__in=REJECTED)),
            requests=Sum("requests"),
            tokens=Sum(TOKENS),
        )
        .order_by("-tokens", "-requests")[:limit]
    )


def top_users(period: Period, limit: int = 10) -> list[dict]:
    rows = _ranked(period, "user_id", limit)
    names = dict(get_user_model().objects.filter(pk__in=[r["user_id"] for r in rows]).values_list("pk", "username"))
    for row in rows:
        row["name"] = names.get(row["user_id"], "(no key)" if row["user_id"] is None else f"deleted #{row['user_id']}")
    return rows


def top_models(period: Period, limit: int = 10, user_id: int | None = None) -> list[dict]:
    rows = _ranked(period, "model", limit, user_id)
    for row in rows:
        row["name"] = row["model"] or "(no model)"
    return rows


def totals(days: list[DayUsage]) -> dict[str, float]:
    requests = sum(d.requests for d in days)
    failed = sum(d.by_group["failed"] for d in days)
    rejected = sum(d.by_group["rejected"] for d in days)
    return {
        "requests": requests,
        "tokens": sum(d.tokens for d in days),
        "failed": failed,
        "rejected": rejected,
        "error_rate": failed / requests if requests else 0.0,
        "rejected_rate": rejected / requests if requests else 0.0,
    }
