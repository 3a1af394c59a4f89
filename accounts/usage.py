"""One usage record per call, accepted or not, written off the request path.

Neither ``arecord`` (the relay's) nor ``record`` (synchronous code's) waits
for the database. The record goes to the durable queue
(``accounts.usage_queue``: a Redis stream, or in embedded mode a journal file
in the data directory) before the answer completes; only when the queue
cannot take it (``record`` with Redis, or a queue that fails) does it wait in
this process's memory. A daemon thread writes memory and the durable queue,
records of a killed process too, every ``GEMPROXY_USAGE_FLUSH_SECONDS`` (or as
soon as a batch in memory is full) with one multi-row insert, adding the batch
to the daily rollup in the same transaction. At a clean exit the rest is
written (atexit). ``flush`` writes everything recorded so far from the calling
thread; tests use it, with the thread disabled
(``GEMPROXY_USAGE_FLUSH_SECONDS = 0``). Every record carries a ``record_id``,
unique in the table: one delivered twice is written once.

Every text field is made storable on the way in (``accounts.storable``), and
one record the database still refuses never holds up the others: a refused
batch is split until the refused record is alone, and only that one is
dropped (logged, and counted in ``writer.dropped``). A database that cannot be
reached is another matter: then the events are held back, up to
``MAX_HELD_BACK``, and written when it answers again.

Calls without a valid key are counted, not kept one by one: a flood of them
must not fill the table. They share one row per minute, outcome, method and
status (``calls`` says how many), which keeps the first one's model and
address as a sample.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from functools import cache
from operator import attrgetter

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections, models, router, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import F, Value
from django.db.models.functions import Least

from accounts.storable import storable
from accounts.usage_event import UsageEvent
from accounts.usage_queue import get_usage_queue, made_usage_queue, reset_usage_queue
from gemproxy_site.ids import new_id

logger = logging.getLogger(__name__)

OUTCOMES = (
    "ok",
    "bad_request",
    "rejected_auth",
    "rejected_quota",
    "client_cancelled",
    "upstream_error",
    "executor_lost",
    "timeout",
    "unavailable",
    "gateway_error",
)

BATCH_SIZE = 500
# Events kept for a retry while the database is unreachable; beyond this the oldest are dropped.
MAX_HELD_BACK = 100_000


class UsageWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[UsageEvent] = queue.SimpleQueue()
        # Taken off the queue while the database could not be reached; written first next time.
        self._held_back: deque[UsageEvent] = deque()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        # For monitoring and tests, since start: records written, records the database
        # refused (each logged once), and events lost because too many were held back.
        self.written = 0
        self.dropped = 0
        self.lost = 0
        self._queue_failing = False  # the durable queue's outage is logged once

    def put(self, event: UsageEvent) -> None:
        self._queue.put(event)
        if self._thread is None:
            self._start()
        elif self._queue.qsize() >= BATCH_SIZE:
            self._wake.set()

    def ensure_started(self) -> None:
        """Start the writer thread if it is not running (it drains the durable queue too)."""
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        interval = float(getattr(settings, "GEMPROXY_USAGE_FLUSH_SECONDS", 1.0))
        if interval <= 0:
            return
        with self._start_lock:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._run, args=(interval,), name="usage-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self, interval: float) -> None:
        cleaned = time.monotonic()
        while not self._closing:
            self._wake.wait(interval)
            self._wake.clear()
            if time.monotonic() - cleaned >= interval:
                # Not on every wake-up (a full batch wakes it): with SQLite's CONN_MAX_AGE of 0 this reconnects.
                cleaned = time.monotonic()
                close_old_connections()
            try:
                self.flush()
            except Exception:
                logger.exception("usage writer: flush failed")
        connections.close_all()  # this thread's own

    @property
    def held_back(self) -> int:
        return len(self._held_back)

    def _next_batch(self) -> list[UsageEvent]:
        batch: list[UsageEvent] = []
        while self._held_back and len(batch) < BATCH_SIZE:
            batch.append(self._held_back.popleft())
        while len(batch) < BATCH_SIZE:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def flush(self) -> int:
        """Write every event queued before this call; return how many were written.

        Stops early, keeping the rest held back, if the database cannot be reached.
        """
        written = 0
        with self._write_lock:
            while batch := self._next_batch():
                try:
                    written += self._write_or_split(batch)
                except DatabaseUnreachable as unreachable:
                    self._hold_back(unreachable.unwritten)
                    return written
            written += self._drain_durable_queue()
        return written

    def _drain_durable_queue(self) -> int:
        """Write what the durable queue holds, in batches; an entry is forgotten only once written (or refused)."""
        durable = get_usage_queue()
        if durable is None:
            return 0
        written = 0
        try:
            while taken := durable.take(BATCH_SIZE):
                events = [event for _, event in taken if event is not None]
                try:
                    written += self._write_or_split(events) if events else 0
                except DatabaseUnreachable:
                    return written  # still pending in the stream: taken again next round
                durable.done([entry_id for entry_id, _ in taken])
                if len(taken) < BATCH_SIZE:
                    break
        except durable.errors as error:
            if not self._queue_failing:
                self._queue_failing = True
                logger.warning("usage writer: %s is unreachable (%r); retrying", durable.description, error)
            return written
        if self._queue_failing:
            self._queue_failing = False
            logger.warning("usage writer: %s answers again", durable.description)
        return written

    def depth(self) -> int:
        """Records waiting to be written: in this process, and in the durable queue (all processes')."""
        waiting = self.held_back + self._queue.qsize()
        durable = get_usage_queue()
        if durable is not None:
            waiting += durable.depth()
        return waiting

    def _write_or_split(self, batch: list[UsageEvent]) -> int:
        """Write ``batch``; halve a part the database refuses until the refused events stand alone."""
        parts = [batch]
        written = 0
        while parts:
            part = parts.pop()
            try:
                write_batch(part)
            except UNREACHABLE as error:
                _drop_broken_connection()
                unwritten = [event for rest in (part, *reversed(parts)) for event in rest]
                logger.warning("usage writer: database unreachable (%s); %d records held back", error, len(unwritten))
                raise DatabaseUnreachable(unwritten) from error
            except Exception as error:
                if len(part) == 1:
                    self.dropped += 1
                    logger.error("usage writer: the database refused a usage record, dropped: %r (%s)", part[0], error)
                else:
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]  # the first half is written first
                continue
            written += len(part)
            self.written += len(part)
        return written

    def _hold_back(self, events: list[UsageEvent]) -> None:
        # Everything queued meanwhile joins them, so memory stays bounded while the database is away.
        self._held_back.extendleft(reversed(events))
        while True:
            try:
                self._held_back.append(self._queue.get_nowait())
            except queue.Empty:
                break
        excess = len(self._held_back) - MAX_HELD_BACK
        if excess > 0:
            for _ in range(excess):
                self._held_back.popleft()
            self.lost += excess
            logger.error("usage writer: %d usage records lost, more than %d held back", excess, MAX_HELD_BACK)

    def discard_pending(self) -> None:
        with self._write_lock:
            self._held_back.clear()
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    return

    def close(self) -> None:
        """Stop the thread and write what is left, held-back events included; registered with atexit."""
        thread = self._thread
        self._closing = True
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
            self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("usage writer: flush at shutdown failed")
        reset_usage_queue()  # an empty journal is removed; what could not be written waits for the next process
        left = self.held_back + self._queue.qsize()
        if left:
            logger.error("usage writer: %d usage records lost at shutdown: the database could not be reached", left)


# The database is away, not refusing these rows: keep them for later.
UNREACHABLE = (OperationalError, InterfaceError)


class DatabaseUnreachable(Exception):
    def __init__(self, unwritten: list[UsageEvent]) -> None:
        super().__init__(f"{len(unwritten)} usage records not written")
        self.unwritten = unwritten


def _drop_broken_connection() -> None:
    """Close the writer's connection if it is dead, so that the next attempt connects afresh."""
    from accounts.models import UsageRecord

    connection = connections[router.db_for_write(UsageRecord)]
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


@cache
def _columns() -> tuple[dict[str, int | None], dict[str, tuple[int, int]]]:
    """Text columns with their lengths, and count columns with their ranges, of ``UsageRecord``."""
    from accounts.models import UsageRecord

    texts, counts = {}, {}
    for column in UsageRecord._meta.concrete_fields:
        if isinstance(column, models.CharField):
            texts[column.attname] = column.max_length
        elif isinstance(column, models.IntegerField) and not column.primary_key and not column.is_relation:
            low, high = BaseDatabaseOperations.integer_field_ranges[column.get_internal_type()]
            counts[column.attname] = (max(0, low or 0), high if high is not None else 2**63 - 1)
    return texts, counts


def _fit(event: UsageEvent) -> UsageEvent:
    """Make every text storable and every count fit its column: one odd event must not fail a batch.

    The writer thread does this for every record, holding the GIL: a text of
    printable ASCII within its length and an int within its range (nearly
    every field of every record) are left as they are without a call.
    """
    texts, counts = _columns()
    for name, length in texts.items():
        text = getattr(event, name)
        fits = type(text) is str and text.isascii() and text.isprintable()
        if not fits or (length is not None and len(text) > length):
            setattr(event, name, storable(text, length))
    for name, (low, high) in counts.items():
        value = getattr(event, name)
        if (type(value) is int and low <= value <= high) or (value is None and name == "ttfb_ms"):
            continue
        try:
            value = int(value or 0)
        except (TypeError, ValueError):
            value = 0
        setattr(event, name, min(max(value, low), high))
    return event


def _row_maker(columns: list[str], adapt_datetime):
    """A function from an event to its row of ``columns``: one C call for the attributes, two fixed after."""
    values = attrgetter(*columns)
    when, record = columns.index("created_at"), columns.index("record_id")

    def row(event: UsageEvent) -> tuple:
        cells = list(values(event))
        cells[when] = adapt_datetime(cells[when])
        cells[record] = cells[record] or None  # unique: the rows without one are NULL, not ""
        return tuple(cells)

    return row


def _anonymous_groups(events: list[UsageEvent]) -> list[UsageEvent]:
    """Calls without a valid key, one event per minute, outcome, method and status, with ``calls`` summed."""
    groups: dict[tuple, UsageEvent] = {}
    for event in events:
        minute = event.created_at.replace(second=0, microsecond=0)
        group = (minute, event.outcome, event.method, event.status_code, event.streamed)
        total = groups.get(group)
        if total is None:
            groups[group] = replace(event, created_at=minute, user_id=None, ttfb_ms=None, attempts=0, record_id="")
            continue
        total.calls += event.calls
        for name in ANONYMOUS_SUMS:
            setattr(total, name, getattr(total, name) + getattr(event, name))
    return [_fit(total) for total in groups.values()]


# What an anonymous row adds up besides ``calls`` (tokens stay 0 without a key, but sum them all the same).
ANONYMOUS_SUMS = (
    "prompt_tokens",
    "candidates_tokens",
    "thoughts_tokens",
    "cached_tokens",
    "request_bytes",
    "response_bytes",
    "latency_ms",
)


def _add_to_anonymous_row(total: UsageEvent) -> bool:
    """Add to this minute's row of the same kind if one exists (another batch's, or another process's)."""
    from accounts.models import UsageRecord

    _, counts = _columns()
    pk = (
        UsageRecord.objects.filter(
            created_at=total.created_at,
            key__isnull=True,
            outcome=total.outcome,
            method=total.method,
            status_code=total.status_code,
            streamed=total.streamed,
        )
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        return False
    UsageRecord.objects.filter(pk=pk).update(
        **{name: Least(F(name) + getattr(total, name), Value(counts[name][1])) for name in ("calls", *ANONYMOUS_SUMS)}
    )
    return True


def write_batch(events: list[UsageEvent]) -> None:
    """One multi-row insert and the rollup's additions, in one transaction.

    ``executemany`` on plain tuples rather than ``bulk_create``: building 500
    model instances costs the writer thread tens of milliseconds holding the
    GIL, time taken from the event loop serving requests.

    A record whose ``record_id`` the table already holds (delivered twice by
    the durable queue) is left out, from the rows and from the rollup.
    """
    from accounts.models import UsageRecord
    from accounts.rollup import add_to_rollup

    connection = connections[router.db_for_write(UsageRecord)]
    fields = [field for field in UsageRecord._meta.concrete_fields if not field.primary_key]
    columns = [field.attname for field in fields]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(UsageRecord._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if connection.vendor in ("postgresql", "sqlite"):
        # Two drainers racing for one entry (one stuck past the claim time) must not fail a batch.
        sql += f" ON CONFLICT ({quote('record_id')}) DO NOTHING"
    keyed = [_fit(event) for event in _once(events) if event.key_id is not None]
    anonymous = _anonymous_groups([event for event in events if event.key_id is None])
    with transaction.atomic(using=connection.alias):
        keyed = _not_yet_written(keyed, connection.alias)
        new = keyed + [total for total in anonymous if not _add_to_anonymous_row(total)]
        if new:
            row = _row_maker(columns, connection.ops.adapt_datetimefield_value)
            with connection.cursor() as cursor:
                cursor.executemany(sql, [row(event) for event in new])
        add_to_rollup(keyed + anonymous)


def _once(events: list[UsageEvent]) -> list[UsageEvent]:
    """The events with each record id once: an XADD retried on a broken connection may have run twice."""
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.record_id:
            if event.record_id in seen:
                continue
            seen.add(event.record_id)
        unique.append(event)
    return unique


# Ids per query: under SQLite's and PostgreSQL's limits on a statement's parameters.
_IDS_PER_QUERY = 500


def _not_yet_written(events: list[UsageEvent], alias: str) -> list[UsageEvent]:
    """In plain SQL: the ORM's ``record_id__in`` prepared each id of a second's batch, 3.5% of the CPU at 50 clients."""
    from accounts.models import UsageRecord

    ids = [event.record_id for event in events if event.record_id]
    if not ids:
        return events
    connection = connections[alias]
    quote = connection.ops.quote_name
    present: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), _IDS_PER_QUERY):
            part = ids[start : start + _IDS_PER_QUERY]
            cursor.execute(
                f"SELECT {quote('record_id')} FROM {quote(UsageRecord._meta.db_table)} "
                f"WHERE {quote('record_id')} IN ({', '.join(['%s'] * len(part))})",
                part,
            )
            present.update(row[0] for row in cursor.fetchall())
    return [event for event in events if event.record_id not in present]


writer = UsageWriter()


def _with_record_id(event: UsageEvent) -> UsageEvent:
    if not event.record_id:
        event.record_id = new_id()
    return event


def record(event: UsageEvent) -> None:
    """Record from synchronous code; never blocks the caller.

    Durable too if the queue takes it without an event loop (the journal
    does), else it waits in this process's memory.
    """
    _with_record_id(event)
    durable = get_usage_queue()
    if durable is not None:
        try:
            if durable.append_at_once(event):
                writer.ensure_started()
                return
        except Exception as error:
            logger.warning("usage: %s refused a record (%r); kept in this process", durable.description, error)
    writer.put(event)


async def arecord(event: UsageEvent) -> None:
    """Make the record durable before the caller's answer completes, without waiting for the database; never raises.

    Distributed: one XADD, well under a millisecond on a local Redis. Embedded:
    one line appended to the journal. If the queue cannot take it, the record
    waits in this process's memory.
    """
    durable = get_usage_queue()
    if durable is None:
        writer.put(_with_record_id(event))
        return
    try:
        await durable.append(_with_record_id(event))
    except asyncio.CancelledError:
        writer.put(event)  # the call is being torn down: keep the record all the same
        raise
    except Exception as error:
        logger.warning("usage: %s refused a record (%r); kept in this process", durable.description, error)
        writer.put(event)
    else:
        writer.ensure_started()


def flush() -> int:
    return writer.flush()


def discard_pending() -> None:
    writer.discard_pending()


def depth() -> int:
    """Records of this process not yet in the database: queued, held back, or in its journal (for /metrics)."""
    durable = made_usage_queue()
    return writer.held_back + writer._queue.qsize() + (durable.depth_in_process() if durable is not None else 0)
