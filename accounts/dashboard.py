"""What the admin's usage dashboard shows, built from the rollup."""

from __future__ import annotations

from accounts import reports
from accounts.charts import OUTCOME_COLOURS, PALETTE, human, stacked_bars
from accounts.reports import DayUsage, Period

PERIODS = (7, 30, 90)
MODELS_IN_CHART = 5


def period_from(days: str | None) -> int:
    try:
        value = int(days or 30)
    except ValueError:
        return 30
    return value if value in PERIODS else 30


def requests_chart(days: list[DayUsage], title: str = "Requests per day"):
    labels = [day.day.strftime("%b %d") for day in days]
    series = [(group, colour, [day.by_group[group] for day in days]) for group, colour in OUTCOME_COLOURS.items()]
    return stacked_bars(title, labels, series)


def tokens_chart(days: list[DayUsage], title: str = "Tokens per day, by model"):
    totals: dict[str, int] = {}
    for day in days:
        for model, tokens in day.tokens_by_model.items():
            totals[model] = totals.get(model, 0) + tokens
    shown = sorted(totals, key=lambda model: totals[model], reverse=True)[:MODELS_IN_CHART]
    series = [
        (model or "(no model)", PALETTE[i], [day.tokens_by_model.get(model, 0) for day in days])
        for i, model in enumerate(shown)
    ]
    if len(totals) > len(shown):
        series.append(
            (
                "other models",
                PALETTE[-1],
                [day.tokens - sum(day.tokens_by_model.get(m, 0) for m in shown) for day in days],
            )
        )
    return stacked_bars(title, [day.day.strftime("%b %d") for day in days], series)


def error_rate_chart(days: list[DayUsage]):
    return stacked_bars(
        "Failed calls per day (executor or upstream at fault), % of requests",
        [day.day.strftime("%b %d") for day in days],
        [("failed", OUTCOME_COLOURS["failed"], [round(day.error_rate * 100, 2) for day in days])],
        value_format=lambda value: f"{value:.1f}%",
    )


def with_shares(rows: list[dict], field: str = "tokens") -> list[dict]:
    """Adds ``share`` (0-100, relative to the largest row) for the inline bars of a ranking."""
    largest = max((row[field] or 0 for row in rows), default=0) or 1
    for row in rows:
        row["share"] = round((row[field] or 0) / largest * 100, 1)
        row["tokens_human"] = human(row["tokens"] or 0)
    return rows


def context(days_param: str | None) -> dict:
    days_count = period_from(days_param)
    period = Period.last_days(days_count)
    days = reports.daily(period)
    return {
        "period": period,
        "days_count": days_count,
        "periods": PERIODS,
        "totals": reports.totals(days),
        "charts": [requests_chart(days), tokens_chart(days), error_rate_chart(days)],
        "top_users": with_shares(reports.top_users(period)),
        "top_models": with_shares(reports.top_models(period)),
    }
