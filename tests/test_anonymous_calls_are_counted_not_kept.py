"""Calls without a valid key are all counted, but a flood of them cannot fill the usage table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from accounts import reports, usage
from accounts.models import UsageDaily, UsageRecord
from accounts.reports import Period
from accounts.usage import UsageEvent

pytestmark = pytest.mark.django_db

MINUTE = datetime(2026, 3, 4, 10, 20, tzinfo=UTC)


def rejected(n: int, at: datetime = MINUTE, **fields) -> UsageEvent:
    defaults = dict(
        outcome="rejected_auth",
        method="generateContent",
        status_code=400,
        model=f"made-up-model-{n}",
        client_ip=f"10.0.{n // 256 % 256}.{n % 256}",
        latency_ms=2,
        request_bytes=10,
        created_at=at + timedelta(microseconds=n * 50_000 % 59_000_000),
    )
    return UsageEvent(**{**defaults, **fields})


def test_a_thousand_rejected_calls_without_a_key_write_one_row_that_counts_them_all():
    for n in range(1000):
        usage.record(rejected(n))

    assert usage.flush() == 1000

    [row] = UsageRecord.objects.all()
    assert (row.calls, row.outcome, row.key_id, row.latency_ms, row.request_bytes) == (
        1000,
        "rejected_auth",
        None,
        2000,
        10_000,
    )
    assert row.created_at == MINUTE
    assert (row.model, row.client_ip) == ("made-up-model-0", "10.0.0.0")  # the first call, as a sample


def test_the_rows_are_bounded_by_minute_outcome_and_method_not_by_what_the_caller_made_up():
    for n in range(600):
        usage.record(rejected(n, at=MINUTE + timedelta(minutes=n % 3)))
        usage.record(rejected(n, method="streamGenerateContent", streamed=True, status_code=403))
        if n % 50 == 0:
            usage.flush()  # calls spread over many batches still share their minute's row
    usage.flush()

    assert UsageRecord.objects.count() == 3 + 1
    assert UsageRecord.objects.aggregate(calls=Sum("calls"))["calls"] == 1200


def test_the_daily_rollup_and_the_dashboard_count_every_anonymous_call():
    for n in range(1000):
        usage.record(rejected(n, at=datetime.now(UTC)))
    usage.flush()

    assert UsageDaily.objects.aggregate(requests=Sum("requests"))["requests"] == 1000
    assert UsageDaily.objects.get().model == ""  # a made-up model name is no model
    totals = reports.totals(reports.daily(Period.last_days(1)))
    assert (totals["requests"], totals["rejected"]) == (1000, 1000)


def test_rebuilding_the_rollup_from_the_records_counts_the_same_calls():
    for n in range(300):
        usage.record(rejected(n, at=datetime.now(UTC)))
    usage.flush()
    before = list(UsageDaily.objects.values_list("day", "model", "outcome", "requests", "latency_ms"))

    call_command("rollup_usage", "--days", "1", stdout=StringIO())

    assert list(UsageDaily.objects.values_list("day", "model", "outcome", "requests", "latency_ms")) == before


def test_calls_with_a_valid_key_keep_a_row_each(make_key):
    key, _ = make_key()
    for n in range(20):
        usage.record(rejected(n, key_id=key.pk, user_id=key.user_id, outcome="rejected_quota", status_code=429))

    usage.flush()

    assert UsageRecord.objects.count() == 20
    assert set(UsageRecord.objects.values_list("calls", flat=True)) == {1}
