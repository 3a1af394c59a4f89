"""The daily rollup of usage: kept up to date by the batch writer, rebuilt from records on demand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from django.db import connections, router, transaction
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

    One upsert per group, not the ORM's select then update or insert: this ran
    for every batch and was most of a small batch's cost. Call it inside the
    writer's transaction.
    """
    groups: dict[tuple, list[int]] = {}
    for record in records:
        group = (utc_day(record.created_at), record.user_id, record.key_id, rollup_model(record), record.outcome)
        sums = groups.get(group)
        if sums is None:
            sums = groups[group] = [0] * len(ADDED)
        sums[0] += record.calls
        sums[1] += record.latency_ms
        for index, name in enumerate(SUMMED, start=2):
            sums[index] += getattr(record, name)
    if not groups:
        return
    connection = connections[router.db_for_write(UsageDaily)]
    adapt_day = connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(), [(adapt_day(day), *rest, *sums) for (day, *rest), sums in groups.items()])


# The columns an upsert adds to, in the order add_to_rollup sums them.
ADDED = ("requests", "latency_ms", *SUMMED)


@cache
def _upsert_sql() -> str:
    # The conflict target is the unique index's expressions (models.GROUP_EXPRESSIONS): SQLite and PostgreSQL alike.
    table = UsageDaily._meta.db_table
    columns = ", ".join(f'"{name}"' for name in ("day", "user_id", "key_id", "model", "outcome", *ADDED))
    placeholders = ", ".join(["%s"] * (5 + len(ADDED)))
    additions = ", ".join(f'"{name}" = "{table}"."{name}" + excluded."{name}"' for name in ADDED)
    return (
        f'INSERT INTO "{table}" ({columns}) VALUES ({placeholders}) '
        'ON CONFLICT ("day", COALESCE("user_id", 0), COALESCE("key_id", 0), "model", "outcome") '
        f"DO UPDATE SET {additions}"
    )


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
