"""Which gateway processes are alive: the one thing a dispatcher cannot learn from its executor's frames.

An executor's WebSocket ends in the gateway process that accepted it. When
that process dies, nothing tells the other processes: their dispatchers would
wait on the executor's attempts until the idle timeout, and ``choose`` would
keep handing out its registry entries. So each process that holds executor
connections keeps a key ``<prefix>process:<id>`` with a short TTL in Redis,
refreshed every ``REFRESH_SECONDS``; registry entries and leases name their
process. ``choose`` skips entries of a process whose key is gone, and a
dispatcher waiting on an attempt asks every ``CHECK_SECONDS`` whether the
serving process still lives.

Two cases must not look like a death:
- A Redis restart empties Redis, liveness keys included, while every process
  lives: a key must be missing for ``GRACE_SECONDS`` (longer than a refresh)
  before a dispatcher gives up on an attempt, and a check that fails because
  Redis is away says nothing at all.
- A slow process (a long GC pause, an overloaded machine) refreshes late: the
  TTL (``GEMPROXY_PROCESS_TTL``, 10 s) is what it may stall without losing
  its streams. A call on a dead process then ends within TTL + grace + one
  check, 14 s with the defaults.

A Redis restart (or hang) has a third effect: pub/sub messages sent while it
was away are lost, and an executor's consumer that could not forward a frame
closes its connection without being able to tell anyone. So every process
also watches Redis itself (its ``run_id`` changes with a restart); an attempt
that was in flight across an outage and hears nothing for
``SILENCE_AFTER_OUTAGE_SECONDS`` after Redis answers again is lost, and ends
(before the first byte: retried) instead of waiting out the idle timeout.

Embedded mode has one process, alive by definition.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from functools import cache

from django.conf import settings

log = logging.getLogger(__name__)

# This process's id, in its executors' registry entries.
PROCESS_ID = uuid.uuid4().hex
REFRESH_SECONDS = 1.0
CHECK_SECONDS = 1.0
GRACE_SECONDS = 2.5
# Longer than any gap between a live stream's chunks; a slow first byte is retried, not lost.
SILENCE_AFTER_OUTAGE_SECONDS = 10.0
# Every waiting attempt asks each second: one EXISTS per process and half-second serves them all.
ANSWER_REUSE_SECONDS = 0.5


def process_key(prefix: str, process_id: str) -> str:
    return f"{prefix}process:{process_id}"


class Liveness:
    """Embedded mode: a single process, which is alive."""

    process_id = PROCESS_ID
    # Redis outages (a failed refresh, or a restart seen as a new run_id) since start,
    # and when (loop time) Redis last came back; ``failing`` while it is away.
    outages = 0
    answering_since = 0.0
    failing = False

    def ensure_running(self) -> None:
        """Start announcing this process (idempotent); call it from the event loop."""

    async def alive(self, process_id: str) -> bool | None:
        """True or False if known; None if it cannot be told now (Redis away)."""
        return True


class RedisLiveness(Liveness):
    def __init__(self, url: str, prefix: str, ttl: float, timeout: float) -> None:
        import redis.asyncio as redis

        from gemproxy_site.redis_options import async_client_options

        self._redis = redis.Redis.from_url(url, **async_client_options(timeout))
        self.prefix = prefix
        self.ttl = ttl
        self._announcer: asyncio.Task | None = None
        self._run_id: str | None = None
        self._answers: dict[str, tuple[float, bool]] = {}  # process id -> (when asked, alive)

    def ensure_running(self) -> None:
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        key = process_key(self.prefix, self.process_id)
        clock = asyncio.get_running_loop()
        while True:
            try:
                await self._redis.set(key, "1", px=int(self.ttl * 1000))
                run_id = str((await self._redis.info("server")).get("run_id", ""))
            except Exception as error:
                # Redis away: the other processes cannot tell anything either (see alive); keep trying.
                if not self.failing:
                    self.failing = True
                    self.outages += 1
                    log.error("liveness: cannot announce process %s (%r); retrying", self.process_id, error)
            else:
                restarted = self._run_id is not None and run_id != self._run_id
                if restarted and not self.failing:
                    # Restarted between two refreshes: nothing failed, and messages were lost all the same.
                    self.outages += 1
                if self.failing or restarted:
                    self.answering_since = clock.time()
                    log.warning("liveness: Redis answers again; process %s announced", self.process_id)
                self.failing, self._run_id = False, run_id
            await asyncio.sleep(REFRESH_SECONDS)

    async def alive(self, process_id: str) -> bool | None:
        if not process_id or process_id == self.process_id:
            return True
        now = time.monotonic()
        asked = self._answers.get(process_id)
        if asked is not None and now - asked[0] < ANSWER_REUSE_SECONDS:
            return asked[1]
        try:
            alive = bool(await self._redis.exists(process_key(self.prefix, process_id)))
        except Exception:
            return None
        if len(self._answers) > 1000:  # processes come and go over weeks
            self._answers.clear()
        self._answers[process_id] = (now, alive)
        return alive


class ProcessWatch:
    """One dispatcher's watch on its attempt: its process dead, or its frames lost in a Redis outage.

    Dead only after a grace, never on a Redis error.
    """

    def __init__(self, liveness: Liveness, process_id: str, clock) -> None:
        self._liveness = liveness
        self._process_id = process_id  # "" for an attempt on this process: only outages matter
        self._clock = clock
        self._next_check = clock() + CHECK_SECONDS
        self._missing_since: float | None = None
        self._outages = liveness.outages
        self._heard = clock()

    def heard(self) -> None:
        """A frame of the attempt arrived."""
        self._heard = self._clock()

    def lost_in_outage(self) -> bool:
        """Redis went away during the attempt, and nothing came since it answers again."""
        liveness = self._liveness
        if liveness.outages == self._outages or liveness.failing:
            return False
        silent_since = max(self._heard, liveness.answering_since)
        return self._clock() - silent_since >= SILENCE_AFTER_OUTAGE_SECONDS

    def due(self) -> float:
        """Seconds until the next check."""
        return max(0.0, self._next_check - self._clock())

    async def dead(self) -> bool:
        """Check if due; True once the process's key has been missing for the grace period."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + CHECK_SECONDS
        if not self._process_id:
            return False
        alive = await self._liveness.alive(self._process_id)
        if alive is not False:
            self._missing_since = None
            return False
        if self._missing_since is None:
            self._missing_since = now
        return now - self._missing_since >= GRACE_SECONDS


def watch_process(process_id: str, clock) -> ProcessWatch | None:
    """A watch on an attempt served by ``process_id``; None in embedded mode."""
    liveness = get_liveness()
    if type(liveness) is Liveness:
        return None
    liveness.ensure_running()  # a process without executors must see Redis outages too
    return ProcessWatch(liveness, "" if process_id == liveness.process_id else process_id, clock)


@cache
def get_liveness() -> Liveness:
    if settings.GEMPROXY_REGISTRY == "executors.registry.RedisRegistry" and settings.REDIS_URL:
        return RedisLiveness(
            settings.REDIS_URL,
            settings.REDIS_PREFIX,
            settings.GEMPROXY_PROCESS_TTL,
            settings.GEMPROXY_REDIS_TIMEOUT,
        )
    return Liveness()
