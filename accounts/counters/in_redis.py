"""Counters in Redis, shared by every gateway process: one Lua script, one round trip, per step.

Windows and leases are timed by Redis's own clock (``TIME``), so gateways on
several machines agree on when a minute starts. A key's counters share one
hash tag, ``{<key id>}``, so they live in one slot of a cluster.

Keys, under ``<prefix>{<key id>}``: ``:rpm:<minute>``, ``:rpd:<day>``,
``:tpm:<minute>``, ``:tpd:<day>`` (strings, expiring after their window), and
``:conc`` (a sorted set of lease ids scored by expiry; expired ones are purged
before counting, so a lease nobody releases frees itself).
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from accounts.counters import CountersUnavailable, Counts, Denial, Grant, lease_seconds
from accounts.policy import Limits
from gemproxy_site.ids import new_id
from gemproxy_site.redis_options import async_client_options, sync_client_options

_PREAMBLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local day = math.floor(now / 86400)
local base = KEYS[1]
local k_rpm = base .. ':rpm:' .. minute
local k_rpd = base .. ':rpd:' .. day
local k_tpm = base .. ':tpm:' .. minute
local k_tpd = base .. ':tpd:' .. day
local k_conc = base .. ':conc'
local function get(key) return tonumber(redis.call('GET', key) or '0') end
"""

# ARGV: rpm, rpd, tpm, tpd, concurrency (0: no limit), estimate, lease id, lease seconds.
# Returns {0, limit, used, reset_at, now} or {1, minute, day, rpm, rpd, tpm, tpd, concurrency, now}.
_ACQUIRE = (
    _PREAMBLE
    + """
local rpm, rpd, tpm, tpd, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local est, lease_id, lease_ttl = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local n_rpm, n_rpd, n_tpm, n_tpd, n_conc = 0, 0, 0, 0, 0
if rpm > 0 then n_rpm = get(k_rpm) end
if rpd > 0 then n_rpd = get(k_rpd) end
if tpm > 0 then n_tpm = get(k_tpm) end
if tpd > 0 then n_tpd = get(k_tpd) end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', k_conc, '-inf', now)
  n_conc = redis.call('ZCARD', k_conc)
end
local minute_reset, day_reset = tostring((minute + 1) * 60), tostring((day + 1) * 86400)
if rpm > 0 and n_rpm >= rpm then return {0, 'rpm', n_rpm, minute_reset, tostring(now)} end
if rpd > 0 and n_rpd >= rpd then return {0, 'rpd', n_rpd, day_reset, tostring(now)} end
if tpm > 0 and est > 0 and n_tpm + est > tpm then return {0, 'tpm', n_tpm, minute_reset, tostring(now)} end
if tpd > 0 and est > 0 and n_tpd + est > tpd then return {0, 'tpd', n_tpd, day_reset, tostring(now)} end
if conc > 0 and n_conc >= conc then return {0, 'concurrency', n_conc, '', tostring(now)} end
if rpm > 0 then n_rpm = redis.call('INCR', k_rpm); redis.call('EXPIRE', k_rpm, 120) end
if rpd > 0 then n_rpd = redis.call('INCR', k_rpd); redis.call('EXPIRE', k_rpd, 172800) end
if tpm > 0 and est > 0 then n_tpm = redis.call('INCRBY', k_tpm, est); redis.call('EXPIRE', k_tpm, 120) end
if tpd > 0 and est > 0 then n_tpd = redis.call('INCRBY', k_tpd, est); redis.call('EXPIRE', k_tpd, 172800) end
if conc > 0 then
  redis.call('ZADD', k_conc, now + lease_ttl, lease_id)
  redis.call('EXPIRE', k_conc, math.ceil(lease_ttl) + 1)
  n_conc = n_conc + 1
end
return {1, minute, day, n_rpm, n_rpd, n_tpm, n_tpd, n_conc, tostring(now)}
"""
)

# ARGV: minute and day of the reservation, estimate, tokens used, lease id ('' for none), count tpm, count tpd.
# The reservation is taken back only while its window is current; the real
# use always counts in the window the call ends in.
_SETTLE = (
    _PREAMBLE
    + """
local start_minute, start_day, est, used = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[6] == '1' then
  local delta = used
  if minute == start_minute then delta = used - est end
  if delta ~= 0 then redis.call('INCRBY', k_tpm, delta); redis.call('EXPIRE', k_tpm, 120) end
end
if ARGV[7] == '1' then
  local delta = used
  if day == start_day then delta = used - est end
  if delta ~= 0 then redis.call('INCRBY', k_tpd, delta); redis.call('EXPIRE', k_tpd, 172800) end
end
if ARGV[5] ~= '' then redis.call('ZREM', k_conc, ARGV[5]) end
return 1
"""
)

# ARGV: lease id, lease seconds. Extends a lease that still exists; never resurrects one.
_RENEW = (
    _PREAMBLE
    + """
local lease_ttl = tonumber(ARGV[2])
if redis.call('ZADD', k_conc, 'XX', 'CH', now + lease_ttl, ARGV[1]) == 1 then
  redis.call('EXPIRE', k_conc, math.ceil(lease_ttl) + 1)
end
return 1
"""
)

_PEEK = (
    _PREAMBLE
    + """
return {get(k_rpm), get(k_rpd), get(k_tpm), get(k_tpd), redis.call('ZCOUNT', k_conc, '(' .. now, '+inf'),
  tostring(now)}
"""
)


class RedisCounters:
    def __init__(self, url: str, prefix: str = "gemproxy:q:", lease_seconds: float = 60.0) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        # redis.asyncio connections belong to the event loop that opened them.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple] = weakref.WeakKeyDictionary()
        self._blocking: tuple | None = None  # a thread-safe synchronous client for views

    @classmethod
    def from_settings(cls) -> RedisCounters:
        return cls(
            url=settings.REDIS_URL,
            prefix=getattr(settings, "REDIS_PREFIX", "gemproxy:") + "q:",
            lease_seconds=lease_seconds(),
        )

    def _scripts(self) -> tuple:
        loop = asyncio.get_running_loop()
        scripts = self._per_loop.get(loop)
        if scripts is None:
            client = aioredis.Redis.from_url(self.url, **async_client_options(_timeout()))
            scripts = (client, *(client.register_script(src) for src in (_ACQUIRE, _SETTLE, _RENEW, _PEEK)))
            self._per_loop[loop] = scripts
        return scripts

    def _base(self, key_id: int) -> str:
        return f"{self.prefix}{{{key_id}}}"

    async def _run(self, index: int, key_id: int, args: list) -> list:
        try:
            return await self._scripts()[index](keys=[self._base(key_id)], args=args)
        except RedisError as exc:
            raise CountersUnavailable(str(exc)) from exc

    async def acquire(self, key_id: int, limits: Limits, estimate: int) -> Grant | Denial:
        lease_id = new_id() if limits.concurrency else ""
        args = [
            limits.rpm,
            limits.rpd,
            limits.tpm,
            limits.tpd,
            limits.concurrency,
            estimate,
            lease_id,
            self.lease_seconds,
        ]
        reply = await self._run(1, key_id, args)
        if reply[0] == 0:
            reset_at = float(reply[3]) if reply[3] else None
            return Denial(reply[1].decode(), int(reply[2]), reset_at, float(reply[4]))
        _, minute, day, rpm, rpd, tpm, tpd, concurrency, now = reply
        counts = Counts(rpm=rpm, rpd=rpd, tpm=tpm, tpd=tpd, concurrency=concurrency, now=float(now))
        return Grant(key_id, limits, minute, day, estimate, lease_id, counts)

    async def settle(self, grant: Grant, tokens_used: int) -> None:
        args = [
            grant.minute,
            grant.day,
            grant.estimate,
            tokens_used,
            grant.lease_id,
            int(bool(grant.limits.tpm)),
            int(bool(grant.limits.tpd)),
        ]
        await self._run(2, grant.key_id, args)

    async def renew(self, grant: Grant) -> None:
        await self._run(3, grant.key_id, [grant.lease_id, self.lease_seconds])

    async def peek(self, key_id: int) -> Counts:
        return _counts(await self._run(4, key_id, []))

    def counts_now(self, key_ids: list[int]) -> dict[int, Counts]:
        if self._blocking is None:
            client = redis.Redis.from_url(self.url, **sync_client_options(_timeout()))
            self._blocking = (client, client.register_script(_PEEK))
        client, peek = self._blocking
        try:
            pipe = client.pipeline(transaction=False)
            for key_id in key_ids:
                peek(keys=[self._base(key_id)], args=[], client=pipe)
            return {key_id: _counts(reply) for key_id, reply in zip(key_ids, pipe.execute(), strict=True)}
        except RedisError as exc:
            raise CountersUnavailable(str(exc)) from exc

    async def aclose(self) -> None:
        """Close this event loop's connections (tests, shutdown)."""
        scripts = self._per_loop.pop(asyncio.get_running_loop(), None)
        if scripts is not None:
            await scripts[0].aclose()


def _timeout() -> float:
    return float(getattr(settings, "GEMPROXY_REDIS_TIMEOUT", 2.0))


def _counts(reply: list) -> Counts:
    rpm, rpd, tpm, tpd, concurrency, now = reply
    return Counts(rpm=rpm, rpd=rpd, tpm=tpm, tpd=tpd, concurrency=concurrency, now=float(now))
