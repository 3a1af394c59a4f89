"""In distributed mode a usage record is in a Redis stream before the answer completes, and written exactly once.

Real Redis (a key prefix of each test's own) and real PostgreSQL. The
writer's thread is off (``usage_written_on_flush``): each test drains with
``flush()``, as the thread would every second.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from django.db import OperationalError

from accounts import usage, usage_queue
from accounts.models import UsageDaily, UsageRecord
from accounts.usage import UsageEvent, UsageWriter
from accounts.usage_queue import GROUP, RedisUsageQueue, get_usage_queue, reset_usage_queue

pytestmark = pytest.mark.django_db(databases=["default", "postgresql"])


@pytest.fixture
def durable(settings, redis_url: str, redis_prefix: str, on_postgresql) -> RedisUsageQueue:
    settings.REDIS_URL, settings.REDIS_PREFIX, settings.GEMPROXY_USAGE_QUEUE = redis_url, redis_prefix, True
    reset_usage_queue()
    queue = get_usage_queue()
    assert isinstance(queue, RedisUsageQueue)
    return queue


def keyed_event(make_key, **fields) -> UsageEvent:
    key, _ = make_key()
    defaults = dict(outcome="ok", method="generateContent", model="gemini-2.5-flash", status_code=200)
    return UsageEvent(user_id=key.user_id, key_id=key.pk, **{**defaults, **fields})


def record_all(events: list[UsageEvent]) -> None:
    async def append() -> None:
        for event in events:
            await usage.arecord(event)

    asyncio.run(append())


def test_a_recorded_call_waits_in_redis_not_in_the_process_until_it_is_written(durable, make_key):
    record_all([keyed_event(make_key) for _ in range(3)])

    assert durable.depth() == 3
    assert usage.writer._queue.qsize() == 0  # nothing a SIGKILL could take with it
    assert UsageRecord.objects.count() == 0

    assert usage.flush() == 3
    assert UsageRecord.objects.count() == 3
    assert durable.depth() == 0


def test_entries_a_dead_process_took_but_never_wrote_are_written_by_another(durable, make_key, redis_url, settings):
    record_all([keyed_event(make_key) for _ in range(4)])
    dead = RedisUsageQueue(redis_url, durable.stream.removesuffix("usage"), 2.0, consumer="killed-process")
    assert len(dead.take(10)) == 4  # read, then SIGKILLed before writing or acknowledging

    assert usage.flush() == 0  # not idle long enough: the owner may be alive, only slow
    time.sleep(0.05)
    settings.GEMPROXY_USAGE_CLAIM_SECONDS = 0.01  # now it has been silent longer than the claim time
    assert usage.flush() == 4
    assert UsageRecord.objects.count() == 4
    assert durable.depth() == 0


def test_a_record_delivered_twice_is_written_once_in_rows_and_rollup(durable, make_key, redis_url):
    event = keyed_event(make_key, prompt_tokens=7)
    record_all([event])
    writer_that_died = UsageWriter()
    writer_that_died._write_or_split([e for _, e in durable.take(10) if e is not None])  # committed, never acked
    client = redis.Redis.from_url(redis_url)
    client.xadd(durable.stream, {"e": usage_queue.encode(event)})  # and once more, as a retried XADD would
    client.close()

    usage.flush()

    assert UsageRecord.objects.filter(record_id=event.record_id).count() == 1
    day = UsageDaily.objects.get()
    assert (day.requests, day.prompt_tokens) == (1, 7)
    assert durable.depth() == 0


def test_a_batch_larger_than_one_lookup_written_again_adds_only_what_was_missing(on_postgresql, make_key):
    key, _ = make_key()
    events = [
        UsageEvent(user_id=key.user_id, key_id=key.pk, outcome="ok", method="generateContent", status_code=200)
        for _ in range(1200)
    ]
    for event in events:
        event.record_id = uuid.uuid4().hex
    usage.write_batch(events[:700])

    usage.write_batch(events)  # the first 700 delivered again, with 500 new ones

    assert UsageRecord.objects.count() == 1200
    assert UsageDaily.objects.get().requests == 1200


def test_records_stay_in_redis_while_the_database_is_away_and_are_written_when_it_returns(
    durable, make_key, monkeypatch
):
    record_all([keyed_event(make_key) for _ in range(5)])

    def unreachable(events):
        raise OperationalError("connection refused")

    monkeypatch.setattr(usage, "write_batch", unreachable)
    assert usage.flush() == 0
    assert durable.depth() == 5
    assert usage.writer.held_back == 0  # held by Redis, not by the process

    monkeypatch.undo()
    assert usage.flush() == 5
    assert durable.depth() == 0


def test_a_hostile_record_in_the_stream_is_bisected_out_and_the_rest_written(durable, make_key, monkeypatch):
    events = [keyed_event(make_key) for _ in range(6)]
    events[3].model = "refused"
    real_write = usage.write_batch

    def refuse_one(batch):
        if any(event.model == "refused" for event in batch):
            raise ValueError("the database refuses this row")
        real_write(batch)

    monkeypatch.setattr(usage, "write_batch", refuse_one)
    record_all(events)

    assert usage.flush() == 5
    assert UsageRecord.objects.count() == 5
    assert durable.depth() == 0  # the refused one is not retried forever


def test_an_entry_that_is_not_a_usage_record_is_dropped_not_retried(durable, make_key, redis_url):
    client = redis.Redis.from_url(redis_url)
    client.xadd(durable.stream, {"e": b"\xff not json"})
    client.xadd(durable.stream, {"other": b"1"})
    client.close()
    record_all([keyed_event(make_key)])

    assert usage.flush() == 1
    assert durable.depth() == 0


def test_without_redis_a_record_waits_in_the_process(settings, on_postgresql, make_key):
    settings.REDIS_URL, settings.GEMPROXY_USAGE_QUEUE = "redis://127.0.0.1:1", True
    reset_usage_queue()

    record_all([keyed_event(make_key)])

    assert usage.writer._queue.qsize() == 1
    assert usage.flush() == 1
    assert UsageRecord.objects.get().record_id


def test_the_group_is_made_again_after_redis_lost_it(durable, make_key, redis_url):
    record_all([keyed_event(make_key)])
    assert usage.flush() == 1
    client = redis.Redis.from_url(redis_url)
    client.delete(durable.stream)  # as a restart without persistence does
    client.xadd(durable.stream, {"e": usage_queue.encode(keyed_event(make_key, record_id="after-restart"))})
    client.close()

    assert usage.flush() == 1
    assert UsageRecord.objects.count() == 2
    client = redis.Redis.from_url(redis_url)
    assert [group["name"] for group in client.xinfo_groups(durable.stream)] == [GROUP.encode()]
    client.close()


async def _silent_server() -> tuple[asyncio.AbstractServer, int]:
    """A TCP server that accepts and never answers: a frozen Redis."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_redis_that_hangs_adds_half_a_second_to_one_answer_and_nothing_to_the_next(settings, on_postgresql, make_key):
    events = [keyed_event(make_key) for _ in range(3)]

    async def record_during_a_freeze() -> list[float]:
        server, port = await _silent_server()
        settings.REDIS_URL, settings.GEMPROXY_USAGE_QUEUE = f"redis://127.0.0.1:{port}", True
        reset_usage_queue()
        took = []
        async with server:
            for event in events:
                started = time.monotonic()
                await usage.arecord(event)
                took.append(time.monotonic() - started)
        return took

    took = asyncio.run(record_during_a_freeze())

    assert took[0] < 1.0 and max(took[1:]) < 0.05, took
    assert usage.writer._queue.qsize() == 3  # kept in the process, written by its thread
