"""Every call leaves a usage record, written in batches off the request path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError
from django.db.models import Sum
from django.utils import timezone

from accounts import usage
from accounts.models import UsageDaily, UsageRecord
from accounts.usage import OUTCOMES, UsageEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def event(**fields) -> UsageEvent:
    defaults = dict(outcome="ok", method="generateContent", model="gemini-2.5-flash", status_code=200)
    return UsageEvent(**{**defaults, **fields})


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_outcome_is_recorded_with_every_field(outcome, make_key):
    key, _ = make_key()
    usage.record(
        UsageEvent(
            outcome=outcome,
            method="streamGenerateContent",
            model="gemini-2.5-pro",
            streamed=True,
            status_code=499 if outcome == "client_cancelled" else 200,
            user_id=key.user_id,
            key_id=key.pk,
            prompt_tokens=11,
            candidates_tokens=22,
            thoughts_tokens=33,
            cached_tokens=4,
            request_bytes=500,
            response_bytes=6000,
            executor_account="ana@example.com",
            attempts=2,
            latency_ms=1234,
            ttfb_ms=321,
            client_ip="2001:db8::1",
        )
    )
    assert usage.flush() == 1
    row = UsageRecord.objects.get()
    assert (row.outcome, row.user_id, row.key_id, row.model, row.method, row.streamed) == (
        outcome,
        key.user_id,
        key.pk,
        "gemini-2.5-pro",
        "streamGenerateContent",
        True,
    )
    assert (row.prompt_tokens, row.candidates_tokens, row.thoughts_tokens, row.cached_tokens) == (11, 22, 33, 4)
    assert (row.request_bytes, row.response_bytes, row.attempts, row.latency_ms, row.ttfb_ms) == (
        500,
        6000,
        2,
        1234,
        321,
    )
    assert (row.executor_account, row.client_ip, row.total_tokens) == ("ana@example.com", "2001:db8::1", 66)


def test_a_rejected_call_without_a_key_is_recorded_too():
    usage.record(event(outcome="rejected_auth", status_code=400, model=""))
    usage.flush()
    assert UsageRecord.objects.get().key_id is None


def test_recording_writes_nothing_until_the_writer_runs(django_assert_num_queries):
    with django_assert_num_queries(0):
        for _ in range(10):
            usage.record(event())
    assert not UsageRecord.objects.exists()
    assert usage.flush() == 10


def test_records_are_written_in_batches(django_assert_max_num_queries, make_key):
    key, _ = make_key()
    for n in range(1200):
        usage.record(event(user_id=key.user_id, key_id=key.pk, prompt_tokens=n % 7))
    # Bulk inserts (SQLite splits them further) and one rollup update per batch, not a query per record.
    with django_assert_max_num_queries(60):
        assert usage.flush() == 1200
    assert UsageRecord.objects.count() == 1200


def test_the_daily_rollup_follows_the_records(make_key):
    key, _ = make_key()
    yesterday = timezone.now() - timedelta(days=1)
    for _ in range(3):
        usage.record(event(user_id=key.user_id, key_id=key.pk, prompt_tokens=10, candidates_tokens=5))
    usage.record(event(user_id=key.user_id, key_id=key.pk, outcome="timeout", status_code=504))
    usage.record(event(user_id=key.user_id, key_id=key.pk, created_at=yesterday, prompt_tokens=7))
    usage.flush()
    usage.record(event(user_id=key.user_id, key_id=key.pk, prompt_tokens=100))
    usage.flush()
    today = UsageDaily.objects.get(day=timezone.now().date(), outcome="ok")
    assert (today.requests, today.prompt_tokens, today.candidates_tokens) == (4, 130, 15)
    assert UsageDaily.objects.get(outcome="timeout").requests == 1
    assert UsageDaily.objects.get(day=yesterday.date()).prompt_tokens == 7


def test_records_of_deleted_keys_and_long_values_do_not_break_a_batch():
    usage.record(event(key_id=987654, user_id=987654, model="m" * 500, client_ip="x" * 100, latency_ms=-5))
    usage.record(event())
    assert usage.flush() == 2
    assert len(UsageRecord.objects.order_by("pk").first().model) == 200


def test_a_batch_is_kept_for_the_next_flush_while_the_database_is_unreachable(monkeypatch):
    real_write = usage.write_batch

    def failing(events):
        raise OperationalError("database is down")

    monkeypatch.setattr(usage, "write_batch", failing)
    usage.record(event())
    assert usage.flush() == 0
    monkeypatch.setattr(usage, "write_batch", real_write)
    assert usage.flush() == 1


@pytest.mark.django_db(transaction=True)
def test_the_background_writer_writes_within_its_interval(settings):
    settings.GEMPROXY_USAGE_FLUSH_SECONDS = 0.1
    writer = usage.UsageWriter()
    try:
        writer.put(event())
        deadline = time.monotonic() + 5
        while writer.written < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.written == 1
    finally:
        writer.close()
    assert UsageRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_closing_the_writer_writes_what_is_left(settings):
    settings.GEMPROXY_USAGE_FLUSH_SECONDS = 3600
    writer = usage.UsageWriter()
    for _ in range(5):
        writer.put(event())
    writer.close()
    assert UsageRecord.objects.aggregate(calls=Sum("calls"))["calls"] == 5


def test_no_record_is_lost_when_the_process_exits_cleanly(tmp_path):
    """A real process records and exits at once; atexit writes the queue."""
    env = {
        **os.environ,
        "GEMPROXY_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'usage.sqlite3'}",
        "SECRET_KEY": "test",
        "REDIS_URL": "",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--skip-checks", "-v", "0"], env=env, check=True, cwd=ROOT, timeout=120)
    script = (
        "from accounts.usage import UsageEvent, record\n"
        "for _ in range(250): record(UsageEvent(outcome='ok', model='gemini-2.5-flash'))\n"
    )
    subprocess.run([*manage, "shell", "-c", script], env=env, check=True, cwd=ROOT, timeout=120)
    with sqlite3.connect(tmp_path / "usage.sqlite3") as db:
        assert db.execute("select sum(calls) from accounts_usagerecord").fetchone()[0] == 250
