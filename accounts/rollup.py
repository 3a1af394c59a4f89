"""The daily rollup of usage: kept up to date by the batch writer, rebuilt from records on demand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import router, transaction
from django.db.models import Case, F, Sum, Value, When
from django.db.models.functions import TruncDate

from accounts.models import UsageDaily, UsageRecord

SUMMED = ("prompt_tokens", "candidates_tokens", "thoughts_tokens", "cached_tokens", "request_bytes", "response_bytes")
GROUPED = ("user_id", "key_id", "rollup_model", "outcome")


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def rollup_model(record) -> str:
    """The model a record counts under: none for calls without a valid key, whose model anyone may make up."""
    return "" if record.key_id is None else record.model


def add_to_rollup(records: Iterable) -> None:
    """Add freshly written records (or the usage events they came from) to their days' rows.

    Call it inside the writer's transaction.
    """
    groups: dict[tuple, dict[str, int]] = {}
    for record in records:
        group = (utc_day(record.created_at), record.user_id, record.key_id, rollup_model(record), record.outcome)
        sums = groups.setdefault(group, dict.fromkeys(("requests", "latency_ms", *SUMMED), 0))
        sums["requests"] += record.calls
        sums["latency_ms"] += record.latency_ms
        for name in SUMMED:
            sums[name] += getattr(record, name)
    for (day, user_id, key_id, model, outcome), sums in groups.items():
        where = {"day": day, "user_id": user_id, "key_id": key_id, "model": model, "outcome": outcome}
        pk = UsageDaily.objects.filter(**where).values_list("pk", flat=True).first()
        if pk is None:
            UsageDaily.objects.create(**where, **sums)
        else:
            UsageDaily.objects.filter(pk=pk).update(**{name: F(name) + value for name, value in sums.items()})


def rebuild_days(first: date, last: date) -> int:
    """Recompute the rollup of days ``first``..``last`` (UTC) from the records; return the rows written.

    Days whose records were pruned keep nothing, so only rebuild days still in retention.
    """
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    rows = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(
            day=TruncDate("created_at", tzinfo=UTC),
            rollup_model=Case(When(key__isnull=True, then=Value("")), default=F("model")),
        )
        .values("day", *GROUPED)
        .annotate(requests=Sum("calls"), latency_ms=Sum("latency_ms"), **{name: Sum(name) for name in SUMMED})
        .order_by()
    )
    with transaction.atomic(using=router.db_for_write(UsageDaily)):
        UsageDaily.objects.filter(day__gte=first, day__lte=last).delete()
        created = UsageDaily.objects.bulk_create(UsageDaily(model=row.pop("rollup_model"), **row) for row in rows)
    return len(created)


def prune_records(older_than_days: int, chunk: int = 10_000) -> int:
    """Delete usage records older than so many days, in chunks; the rollup stays. Return how many."""
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    deleted = 0
    while True:
        ids = list(UsageRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        deleted += UsageRecord.objects.filter(pk__in=ids).delete()[0]
