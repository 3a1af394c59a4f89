"""The durable queue of usage records, picked by settings: a Redis stream, or a journal file in embedded mode.

``get_usage_queue`` returns the process's queue: with ``REDIS_URL`` the Redis
stream below, without it the journal in the data directory
(``accounts.usage_journal``), and None with ``GEMPROXY_USAGE_QUEUE`` off
(records then wait in the process's memory). Both answer the same few calls
(``UsageQueue``); the writer thread (``accounts.usage``) drains either.

The Redis stream, which every gateway process drains:

A call's record is appended (XADD) before its answer completes, so a gateway
process SIGKILLed a moment later has lost nothing: whichever process drains
next writes it. Each process drains as one consumer of one consumer group:
it reads its own unacknowledged entries first (a batch the database did not
take last time), then new ones, and takes over (XAUTOCLAIM) entries that a
consumer left unacknowledged for ``CLAIM_IDLE_SECONDS`` (it died, or lost its
database). An entry is acknowledged and deleted only once the database holds
its record, or refused it for good. Delivered twice (a drainer died between
the commit and the XACK), a record is still written once: its ``record_id`` is
unique in the table.

The stream is capped at ``MAX_QUEUED`` entries (approximately, the cheap way),
which bounds what a long database outage holds in Redis; the oldest go first.
Redis must persist (AOF) for records to survive a Redis restart too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from accounts.usage_event import UsageEvent, decode, encode
from accounts.usage_journal import JournalUsageQueue

logger = logging.getLogger(__name__)

MAX_QUEUED = 1_000_000
# An entry unacknowledged this long belongs to a consumer that is gone or stuck
# (settings.GEMPROXY_USAGE_CLAIM_SECONDS overrides it).
CLAIM_IDLE_SECONDS = 30.0
GROUP = "usage-writers"
# An append gives up this soon, and after a failure the next appends skip Redis
# for a moment: a Redis that hangs must not add seconds to every answer.
APPEND_TIMEOUT_SECONDS = 0.5
SKIP_SECONDS = 1.0


class QueueUnavailable(Exception):
    """Redis failed an append a moment ago: the record stays in the process."""


class UsageQueue(Protocol):
    """Where a call's record is durable before its answer completes, until the writer has written it."""

    errors: tuple[type[Exception], ...]  # what take, done and depth raise while the queue is unreachable
    description: str  # for the writer's log

    async def append(self, event: UsageEvent) -> None: ...

    def append_at_once(self, event: UsageEvent) -> bool:
        """Append without an event loop, if this queue can (True); raises as ``append`` does."""
        ...

    def take(self, count: int) -> list[tuple[Any, UsageEvent | None]]:
        """Up to ``count`` entries (id, event or None if unreadable); those not ``done`` come again."""
        ...

    def done(self, entry_ids: list[Any]) -> None: ...

    def depth(self) -> int: ...

    def depth_in_process(self) -> int:
        """The part of ``depth`` this process answers for, which /metrics sums over live processes."""
        ...

    def close(self) -> None: ...


def consumer_name() -> str:
    """This process's name in the consumer group: unique, and readable in XINFO."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RedisUsageQueue:
    def __init__(self, url: str, prefix: str, timeout: float, consumer: str | None = None) -> None:
        import redis
        import redis.asyncio as aredis

        from gemproxy_site.redis_options import async_client_options, sync_client_options

        self.errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self.description = "the usage queue in Redis"
        self.stream = prefix + "usage"
        self.consumer = consumer or consumer_name()
        # The appending side lives on the event loop, the draining side in the writer's thread.
        self._appender = aredis.Redis.from_url(url, **async_client_options(timeout))
        self._drainer = redis.Redis.from_url(url, **sync_client_options(timeout))
        self._group_made = False
        self._skip_until = 0.0

    async def append(self, event: UsageEvent) -> None:
        """XADD the record; raises (at once while Redis failed a moment ago) if Redis does not take it."""
        if time.monotonic() < self._skip_until:
            raise QueueUnavailable("the usage queue failed less than a second ago")
        try:
            # Shorter than the Redis timeout: during an outage the call has waited on Redis once already.
            async with asyncio.timeout(APPEND_TIMEOUT_SECONDS):
                await self._appender.xadd(self.stream, {"e": encode(event)}, maxlen=MAX_QUEUED, approximate=True)
        except BaseException:
            # Cut short, the XADD may still run: the record_id keeps the copy kept in memory from counting twice.
            self._skip_until = time.monotonic() + SKIP_SECONDS
            raise

    def append_at_once(self, event: UsageEvent) -> bool:
        return False  # its client is the event loop's: synchronous callers keep their records in memory

    def depth(self) -> int:
        """Records queued and not yet written (acknowledged entries are deleted)."""
        return int(self._drainer.xlen(self.stream))

    def depth_in_process(self) -> int:
        return 0  # the stream is every process's: its depth is XLEN's, not a per-process figure

    def _ensure_group(self) -> None:
        # Also after a Redis restart has lost the group: BUSYGROUP says it exists.
        import redis

        try:
            self._drainer.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_made = True

    def take(self, count: int) -> list[tuple[bytes, UsageEvent | None]]:
        """Up to ``count`` entries for this consumer: (entry id, event, or None if unreadable)."""
        import redis

        if not self._group_made:
            self._ensure_group()
        try:
            entries = self._read(count)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._ensure_group()  # Redis restarted without our group
            entries = self._read(count)
        taken: list[tuple[bytes, UsageEvent | None]] = []
        for entry_id, values in entries:
            raw = (values or {}).get(b"e")
            try:
                taken.append((entry_id, decode(raw) if raw is not None else None))
            except (ValueError, TypeError, KeyError) as error:
                logger.error("usage queue: entry %r is not a usage record (%s); dropped", entry_id, error)
                taken.append((entry_id, None))
        return taken

    def _read(self, count: int) -> list:
        # Our own unacknowledged entries first: a batch the database did not take.
        mine = self._drainer.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=count)
        entries = [entry for entry in _entries(mine) if entry[1]]  # an entry trimmed away reads empty
        if len(entries) < count:
            idle = float(getattr(settings, "GEMPROXY_USAGE_CLAIM_SECONDS", CLAIM_IDLE_SECONDS))
            claimed = self._drainer.xautoclaim(
                self.stream, GROUP, self.consumer, int(idle * 1000), "0-0", count=count - len(entries)
            )
            entries += [entry for entry in claimed[1] if entry[1]]
        if len(entries) < count:
            fresh = self._drainer.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count - len(entries))
            entries += _entries(fresh)
        self._forget_trimmed(mine)
        return entries

    def _forget_trimmed(self, mine: Any) -> None:
        gone = [entry_id for entry_id, values in _entries(mine) if not values]
        if gone:
            self._drainer.xack(self.stream, GROUP, *gone)

    def done(self, entry_ids: list[bytes]) -> None:
        """The database holds (or refused for good) these entries' records: forget them."""
        if not entry_ids:
            return
        with self._drainer.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            pipe.execute()

    def close(self) -> None:
        self._drainer.close()


def _entries(reply: Any) -> list:
    # XREADGROUP answers [[stream, [(id, fields), ...]]] (RESP2) or {stream: [[...]]} (RESP3).
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for batches in reply.values() for batch in batches for entry in batch]
    return [entry for _, batch in reply for entry in batch]


# The process's queue, made once: by the first call, or the writer's thread, or the metrics sampler's.
_made: list[UsageQueue | None] = []
_making = threading.Lock()


def get_usage_queue() -> UsageQueue | None:
    """The process's durable queue; None with GEMPROXY_USAGE_QUEUE off (records go straight to the writer)."""
    if _made:
        return _made[0]
    with _making:  # two journals in one process would leave one of them undrained
        if not _made:
            _made.append(_pick_usage_queue())
    return _made[0]


def made_usage_queue() -> UsageQueue | None:
    """The process's durable queue if one was made, without making one.

    For readers such as the metrics sampler: at shutdown the writer closes the
    queue, and a sampler that made a new one then would leave an empty journal behind.
    """
    return _made[0] if _made else None


def _pick_usage_queue() -> UsageQueue | None:
    if not getattr(settings, "GEMPROXY_USAGE_QUEUE", False):
        return None
    if settings.REDIS_URL:
        return RedisUsageQueue(settings.REDIS_URL, settings.REDIS_PREFIX, settings.GEMPROXY_REDIS_TIMEOUT)
    return JournalUsageQueue(Path(settings.GEMPROXY_USAGE_JOURNAL_DIR))


def reset_usage_queue() -> None:
    """Close the process's queue, if it has one, so that the next call picks one from the settings again (tests)."""
    with _making:
        queue = _made.pop() if _made else None
    if queue is not None:
        queue.close()
