"""One usage record per call, accepted or not, written off the request path.

``record`` only puts the event on a queue. A daemon thread writes the queue
every ``GEMPROXY_USAGE_FLUSH_SECONDS`` (or as soon as a batch is full) with one
``bulk_create`` and adds the batch to the daily rollup in the same
transaction. At a clean exit the rest of the queue is written (atexit).
``flush`` writes everything queued so far from the calling thread; tests use
it, with the thread disabled (``GEMPROXY_USAGE_FLUSH_SECONDS = 0``).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connections, router, transaction
from django.utils import timezone

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


@dataclass
class UsageEvent:
    outcome: str
    method: str = ""
    model: str = ""
    streamed: bool = False
    status_code: int = 0
    user_id: int | None = None
    key_id: int | None = None
    prompt_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    executor_account: str = ""
    attempts: int = 0
    latency_ms: int = 0
    ttfb_ms: int | None = None
    client_ip: str = ""
    created_at: datetime = field(default_factory=timezone.now)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens


class UsageWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[UsageEvent] = queue.SimpleQueue()
        self._held_back: list[UsageEvent] = []  # a batch the database refused, retried next time
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.written = 0  # since start, for monitoring and tests

    def put(self, event: UsageEvent) -> None:
        self._queue.put(event)
        if self._thread is None:
            self._start()
        elif self._queue.qsize() >= BATCH_SIZE:
            self._wake.set()

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
        while not self._closing:
            self._wake.wait(interval)
            self._wake.clear()
            close_old_connections()
            try:
                self.flush()
            except Exception:
                logger.exception("usage writer: flush failed")
        connections.close_all()  # this thread's own

    def flush(self) -> int:
        """Write every event queued before this call; return how many were written."""
        written = 0
        with self._write_lock:
            while True:
                batch, self._held_back = self._held_back, []
                while len(batch) < BATCH_SIZE:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    return written
                try:
                    write_batch(batch)
                except Exception:
                    logger.exception("usage writer: could not write %d records; will retry", len(batch))
                    self._held_back = batch[-MAX_HELD_BACK:]
                    return written
                written += len(batch)
                self.written += len(batch)

    def discard_pending(self) -> None:
        with self._write_lock:
            self._held_back = []
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    return

    def close(self) -> None:
        """Stop the thread and write what is left; registered with atexit."""
        thread = self._thread
        self._closing = True
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
            self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("usage writer: records lost at shutdown")


# Text columns' sizes; longer values are cut rather than fail the batch on PostgreSQL.
_LENGTHS = {"model": 200, "method": 64, "outcome": 20, "executor_account": 200, "client_ip": 45}


def _row(event: UsageEvent, columns: list[str], adapt_datetime) -> tuple:
    return tuple(adapt_datetime(event.created_at) if name == "created_at" else getattr(event, name) for name in columns)


_COUNTS = (
    "status_code",
    "prompt_tokens",
    "candidates_tokens",
    "thoughts_tokens",
    "cached_tokens",
    "request_bytes",
    "response_bytes",
    "attempts",
    "latency_ms",
)


def _fit(event: UsageEvent) -> UsageEvent:
    """Cut text to its column and keep counts non-negative: one odd event must not fail a batch."""
    for name, length in _LENGTHS.items():
        value = getattr(event, name) or ""
        if len(value) > length:
            setattr(event, name, value[:length])
    for name in _COUNTS:
        if getattr(event, name) < 0:
            setattr(event, name, 0)
    return event


def write_batch(events: list[UsageEvent]) -> None:
    """One multi-row insert and the rollup's additions, in one transaction.

    ``executemany`` on plain tuples rather than ``bulk_create``: building 500
    model instances costs the writer thread tens of milliseconds holding the
    GIL, time taken from the event loop serving requests.
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
    events = [_fit(event) for event in events]
    rows = [_row(event, columns, connection.ops.adapt_datetimefield_value) for event in events]
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        add_to_rollup(events)


writer = UsageWriter()


def record(event: UsageEvent) -> None:
    """Queue the record; never blocks the caller."""
    writer.put(event)


def flush() -> int:
    return writer.flush()


def discard_pending() -> None:
    writer.discard_pending()
