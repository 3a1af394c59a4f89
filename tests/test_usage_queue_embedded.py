"""Embedded mode: a call's end waits until its usage record is committed, so a SIGKILL loses none.

The writer's thread runs here (with a long interval, so only a wake-up can
explain a prompt write), on its own database connection: hence a
transactional test database.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from accounts import usage
from accounts.models import UsageRecord
from accounts.usage import UsageEvent, UsageWriter

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running_writer(settings, monkeypatch) -> UsageWriter:
    settings.GEMPROXY_USAGE_FLUSH_SECONDS = 60
    writer = UsageWriter()
    monkeypatch.setattr(usage, "writer", writer)
    yield writer
    writer.close()


def keyed_event(key_id: int = 1) -> UsageEvent:
    return UsageEvent(outcome="ok", method="generateContent", model="gemini-2.5-flash", key_id=key_id)


def test_a_waiting_record_is_committed_at_once_not_at_the_next_interval(running_writer) -> None:
    future = running_writer.put_and_wait(keyed_event())
    assert future is not None
    future.result(timeout=5)

    assert UsageRecord.objects.count() == 1


def test_arecord_returns_once_the_record_is_in_the_database(running_writer, settings) -> None:
    settings.GEMPROXY_USAGE_WAIT_SECONDS = 5

    async def record_three() -> float:
        started = time.monotonic()
        await asyncio.gather(*(usage.arecord(keyed_event(n)) for n in range(3)))
        return time.monotonic() - started

    took = asyncio.run(record_three())

    assert UsageRecord.objects.count() == 3
    assert took < 2.0


def test_without_a_wait_records_stay_in_memory_until_the_interval(running_writer, settings) -> None:
    settings.GEMPROXY_USAGE_WAIT_SECONDS = 0

    asyncio.run(usage.arecord(keyed_event()))
    time.sleep(0.3)

    assert UsageRecord.objects.count() == 0  # what a SIGKILL now would lose
