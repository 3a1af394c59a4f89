"""Embedded mode: a call's usage record is in a journal file before the answer completes, and written exactly once.

The writer's thread is off (``usage_written_on_flush``): each test drains
with ``flush()``, as the thread would every second. Each test has a journal
directory of its own; a second ``JournalUsageQueue`` on it stands for another
process sharing the data directory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from django.db import OperationalError

from accounts import usage
from accounts.models import UsageDaily, UsageRecord
from accounts.usage import UsageEvent
from accounts.usage_journal import JournalUsageQueue
from accounts.usage_queue import get_usage_queue, reset_usage_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def journal(settings) -> JournalUsageQueue:
    queue = get_usage_queue()
    assert isinstance(queue, JournalUsageQueue)
    return queue


def keyed_event(key_id: int = 1, **fields) -> UsageEvent:
    return UsageEvent(outcome="ok", method="generateContent", model="gemini-2.5-flash", key_id=key_id, **fields)


def record_all(events: list[UsageEvent]) -> None:
    async def append() -> None:
        for event in events:
            await usage.arecord(event)

    asyncio.run(append())


def segments(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.jsonl"))


def test_a_recorded_call_waits_in_the_journal_not_in_the_process_until_it_is_written(journal) -> None:
    record_all([keyed_event(n) for n in range(3)])

    assert journal.depth() == 3
    assert usage.writer._queue.qsize() == 0  # nothing a SIGKILL could take with it
    assert UsageRecord.objects.count() == 0

    assert usage.flush() == 3
    assert UsageRecord.objects.count() == 3
    assert journal.depth() == 0


def test_a_record_from_synchronous_code_goes_to_the_journal_too(journal) -> None:
    usage.record(keyed_event())  # as the DRF views and the refusal of an unknown key record
    usage.record(UsageEvent(outcome="rejected_auth", method="generateContent", status_code=400))

    assert (journal.depth(), usage.writer._queue.qsize()) == (2, 0)
    assert usage.flush() == 2


def test_a_written_segment_is_deleted_and_appends_go_on_in_a_new_one(journal) -> None:
    record_all([keyed_event()])
    usage.flush()
    record_all([keyed_event()])

    assert segments(journal.directory) == [f"{journal.name}.00000002.jsonl"]
    assert usage.flush() == 1
    assert UsageRecord.objects.count() == 2


def test_records_a_dead_process_left_in_its_journal_are_written_first(journal, settings) -> None:
    dead = JournalUsageQueue(journal.directory, name="killed-process")
    asyncio.run(dead.append(keyed_event(7, prompt_tokens=5)))
    # SIGKILLed: no clean-up runs, the kernel only closes its descriptors, which lets go of its lock.
    os.close(dead._fd)
    os.close(dead._lock_fd)
    record_all([keyed_event(8)])

    assert usage.flush() == 2
    assert sorted(UsageRecord.objects.values_list("key_id", flat=True)) == [7, 8]
    assert not list(journal.directory.glob("killed-process.*"))  # its lock file too


def test_the_journal_of_a_live_process_sharing_the_directory_is_left_to_it(journal) -> None:
    alive = JournalUsageQueue(journal.directory, name="other-live-process")
    asyncio.run(alive.append(keyed_event(7)))
    record_all([keyed_event(8)])

    assert usage.flush() == 1
    assert list(UsageRecord.objects.values_list("key_id", flat=True)) == [8]
    assert alive.depth() == 1
    alive.close()


def test_a_record_written_just_before_the_process_died_is_not_written_twice(journal) -> None:
    event = keyed_event(prompt_tokens=7)
    record_all([event])
    usage.writer._write_or_split([e for _, e in journal.take(10) if e is not None])  # committed, never forgotten

    usage.flush()

    assert UsageRecord.objects.filter(record_id=event.record_id).count() == 1
    day = UsageDaily.objects.get()
    assert (day.requests, day.prompt_tokens) == (1, 7)
    assert journal.depth() == 0


def test_records_stay_in_the_journal_while_the_database_is_away(journal, monkeypatch) -> None:
    record_all([keyed_event(n) for n in range(5)])

    def unreachable(events):
        raise OperationalError("database is locked")

    monkeypatch.setattr(usage, "write_batch", unreachable)
    assert usage.flush() == 0
    assert journal.depth() == 5
    assert usage.depth() == 5  # what /metrics shows
    assert usage.writer.held_back == 0  # held by the journal, not by the process
    record_all([keyed_event(5)])

    monkeypatch.undo()
    assert usage.flush() == 6
    assert journal.depth() == 0
    assert segments(journal.directory) == [f"{journal.name}.00000003.jsonl"]  # only the open, empty one


def test_a_line_that_is_not_a_usage_record_is_dropped_not_retried(journal) -> None:
    with open(journal.directory / f"{journal.name}.00000001.jsonl", "ab") as file:
        file.write(b"\xff not json\n")
    journal._appended += 1
    record_all([keyed_event()])

    assert usage.flush() == 1
    assert journal.depth() == 0


def test_when_the_journal_cannot_be_written_the_record_waits_in_the_process(journal, monkeypatch) -> None:
    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("accounts.usage_journal.os.write", disk_full)
    record_all([keyed_event()])
    monkeypatch.undo()

    assert usage.writer._queue.qsize() == 1
    assert usage.flush() == 1


def test_a_clean_exit_leaves_no_journal_behind(journal) -> None:
    record_all([keyed_event()])
    usage.flush()
    journal.close()

    assert list(journal.directory.iterdir()) == []


def test_the_metrics_sampler_after_shutdown_makes_no_new_journal(journal) -> None:
    record_all([keyed_event()])
    usage.flush()
    reset_usage_queue()  # what the writer does at a clean exit

    assert usage.depth() == 0  # the sampler's next tick, before the process is gone
    assert list(journal.directory.iterdir()) == []


def test_with_the_queue_off_a_record_waits_in_the_process(settings) -> None:
    settings.GEMPROXY_USAGE_QUEUE = False
    reset_usage_queue()

    record_all([keyed_event()])

    assert usage.writer._queue.qsize() == 1
