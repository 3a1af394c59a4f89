"""The registry of live executors, and the choice of one for each attempt.

Two implementations behind one interface, picked by settings.GEMPROXY_REGISTRY:
``LocalRegistry`` (embedded: one process) and ``RedisRegistry`` (any number of
Daphne processes share it). ``choose`` is atomic in both: it picks the
executor with the fewest tasks in flight, ties in turn, never beyond its
announced concurrency, and counts the new task in one step. An account the
upstream refused for a model (429) cools down for it: ``choose`` leaves its
executors out for that model and, when it finds no executor, says whether
they are all cooling down and when the first one is free again, so that the
dispatcher answers at once instead of waiting for a slot that cannot come.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass
from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ExecutorInfo:
    # One entry per WebSocket connection: a reconnecting executor keeps its
    # executor_id but gets a new connection_id, so the old connection's
    # clean-up can never remove the new one.
    connection_id: str
    executor_id: str
    channel_name: str
    account_id: int
    account_label: str
    software: str
    max_concurrency: int
    connected_at: float
    # What the executor announced in its hello (protocol.FEATURES); older ones announce nothing.
    features: tuple[str, ...] = ()
    # The gateway process holding the connection (executors.liveness): its
    # death ends the connection without a word to the other processes.
    process_id: str = ""


@dataclass(frozen=True)
class Lease:
    """One task's claim on one executor, returned by ``acquire``; give it back with ``release``."""

    connection_id: str
    channel_name: str
    account_id: int
    account_label: str
    process_id: str = ""


@dataclass(frozen=True)
class Choice:
    """What ``choose`` found: a lease, or why there is none.

    ``cooling_until`` is the earliest end (epoch seconds) of a cooldown among
    the live executors for this model, excluded ones included: a freed account
    can serve the client's next call. ``all_cooling`` says that no executor
    this call may still use is free of a cooldown (busy ones are not cooling:
    their slots free up), and that at least one is cooling: waiting cannot help.
    """

    lease: Lease | None = None
    cooling_until: float | None = None
    all_cooling: bool = False
    # The call may only be served by some accounts, and none of them has a live executor able to.
    absent: bool = False


@dataclass(frozen=True)
class Cooldown:
    account_id: int
    account_label: str
    model: str
    until: float  # epoch seconds


class Registry:
    async def register(self, info: ExecutorInfo, deadline: float) -> None:
        raise NotImplementedError

    async def heartbeat(self, connection_id: str, deadline: float, in_flight: int) -> bool:
        """Push the deadline out, and set the task count to what the executor's consumer holds.

        False when the entry is gone (expired, or Redis lost it): a heartbeat
        never revives one, but the consumer of a live connection registers again.

        The consumer's count is the truth: a gateway process that died in the
        middle of a call never releases its slot, and this heals that within
        one heartbeat. Tasks on their way to the consumer (a millisecond) may
        be missed by it; the executor queues or refuses an extra one.
        """
        raise NotImplementedError

    async def unregister(self, connection_id: str) -> None:
        raise NotImplementedError

    async def choose(
        self,
        model: str,
        exclude: frozenset[str] = frozenset(),
        *,
        accounts: frozenset[int] | None = None,
        prefer: frozenset[int] = frozenset(),
        features: frozenset[str] = frozenset(),
    ) -> Choice:
        """Claim a slot on the best executor able to serve ``model`` now, in one atomic step.

        Only executors of ``accounts`` (None: any) announcing every one of
        ``features`` count; one of ``prefer`` with a free slot wins over the
        others, fewest tasks first within each group.
        """
        raise NotImplementedError

    async def acquire(self, model: str, exclude: frozenset[str] = frozenset()) -> Lease | None:
        """Claim a slot on the best executor able to serve ``model`` now, or None."""
        return (await self.choose(model, exclude)).lease

    async def release(self, lease: Lease) -> None:
        raise NotImplementedError

    async def cool_down(self, account_id: int, model: str, seconds: float, account_label: str = "") -> None:
        """Leave this account out for this model for ``seconds`` from now (after an upstream 429).

        The latest refusal decides: it carries the upstream's freshest word on when to come back.
        """
        raise NotImplementedError

    async def cooldowns(self) -> list[Cooldown]:
        """The cooldowns in force, by account and model, for the admin and /healthz."""
        raise NotImplementedError

    async def wait_for_change(self, seconds: float) -> None:
        """Sleep until a slot may have freed up, at most ``seconds``."""
        raise NotImplementedError

    async def snapshot(self) -> list[dict]:
        """The live executors with their load, for the admin and /healthz.

        An executor past its heartbeat deadline is not live: it is left out,
        and its entry removed, as ``acquire`` would.
        """
        raise NotImplementedError


class LocalRegistry(Registry):
    def __init__(self) -> None:
        self._executors: dict[str, ExecutorInfo] = {}
        self._deadlines: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._cooldowns: dict[tuple[int, str], Cooldown] = {}
        self._turn = itertools.count()
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def register(self, info: ExecutorInfo, deadline: float) -> None:
        self._executors[info.connection_id] = info
        self._deadlines[info.connection_id] = deadline
        self._in_flight[info.connection_id] = 0
        self._notify()

    async def heartbeat(self, connection_id: str, deadline: float, in_flight: int) -> bool:
        if connection_id not in self._executors:
            return False
        self._deadlines[connection_id] = deadline
        self._in_flight[connection_id] = in_flight
        return True

    async def unregister(self, connection_id: str) -> None:
        self._executors.pop(connection_id, None)
        self._deadlines.pop(connection_id, None)
        self._in_flight.pop(connection_id, None)
        self._notify()

    async def choose(
        self,
        model: str,
        exclude: frozenset[str] = frozenset(),
        *,
        accounts: frozenset[int] | None = None,
        prefer: frozenset[int] = frozenset(),
        features: frozenset[str] = frozenset(),
    ) -> Choice:
        # One pass over the executors, in a fixed order (the round robin's): this runs once per call.
        now = time.time()
        live = usable = False
        cooling_until: float | None = None
        best: list[ExecutorInfo] = []  # the preferred group's, else the rest's, fewest tasks in flight
        best_rank: tuple[bool, int] | None = None
        for key in sorted(self._executors):
            info = self._executors[key]
            if self._deadlines[key] < now or (accounts is not None and info.account_id not in accounts):
                continue
            if features and not features.issubset(info.features):
                continue
            live = True
            until = self._cooling_until(info.account_id, model, now)
            if until is not None:  # an excluded executor's account cools down for the others all the same
                cooling_until = until if cooling_until is None else min(cooling_until, until)
                continue
            if key in exclude:
                continue
            usable = True
            in_flight = self._in_flight[key]
            if in_flight >= info.max_concurrency:
                continue
            rank = (info.account_id not in prefer, in_flight)
            if best_rank is None or rank < best_rank:
                best_rank, best = rank, [info]
            elif rank == best_rank:
                best.append(info)
        if accounts is not None and not live:
            return Choice(None, absent=True)
        if not best:
            return Choice(None, cooling_until, all_cooling=not usable and cooling_until is not None)
        chosen = best[next(self._turn) % len(best)]
        self._in_flight[chosen.connection_id] += 1
        lease = Lease(chosen.connection_id, chosen.channel_name, chosen.account_id, chosen.account_label)
        return Choice(lease, cooling_until)

    def _cooling_until(self, account_id: int, model: str, now: float) -> float | None:
        cooldown = self._cooldowns.get((account_id, model))
        return cooldown.until if cooldown is not None and cooldown.until > now else None

    async def release(self, lease: Lease) -> None:
        if self._in_flight.get(lease.connection_id, 0) > 0:
            self._in_flight[lease.connection_id] -= 1
        self._notify()

    async def cool_down(self, account_id: int, model: str, seconds: float, account_label: str = "") -> None:
        label = account_label or f"account {account_id}"
        self._cooldowns[(account_id, model)] = Cooldown(account_id, label, model, time.time() + seconds)

    async def cooldowns(self) -> list[Cooldown]:
        now = time.time()
        for key in [key for key, cooldown in self._cooldowns.items() if cooldown.until <= now]:
            del self._cooldowns[key]
        return sorted(self._cooldowns.values(), key=lambda c: (c.account_label, c.model))

    async def wait_for_change(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            pass

    async def snapshot(self) -> list[dict]:
        now = time.time()
        for connection_id in [key for key, deadline in self._deadlines.items() if deadline < now]:
            await self.unregister(connection_id)
        return [
            _snapshot_row(asdict(info), self._in_flight[connection_id], self._deadlines[connection_id])
            for connection_id, info in sorted(self._executors.items())
        ]


# KEYS: executors hash, deadlines zset, in-flight hash. ARGV: now.
# Forgets every executor past its deadline.
_PRUNE = """
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
for _, id in ipairs(expired) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[2], id)
end
"""

# KEYS[6]: the prefix of processes' liveness keys (executors.liveness).
# ``live_entry`` is an executor's entry, or nil if it is gone or its gateway
# process is (its liveness key expired): the entry stays, for a process that
# was only slow, until its deadline prunes it.
_LIVE_ENTRY = """
local process_prefix = KEYS[6]
local process_alive = {}
local function live_entry(executors, id)
  local raw = redis.call('HGET', executors, id)
  if not raw then return nil end
  local process = cjson.decode(raw).process_id
  if type(process) ~= 'string' or process == '' then return raw end
  if process_alive[process] == nil then
    process_alive[process] = redis.call('EXISTS', process_prefix .. process) == 1
  end
  if process_alive[process] then return raw end
  return nil
end
"""

# KEYS: executors hash, deadlines zset, in-flight hash, turn counter, cooldowns hash, process prefix.
# ARGV: now, model, allowed accounts (JSON array, or "" for any), preferred
# accounts (JSON array), features needed (JSON array), excluded ids...
# Answers {kind, chosen executor or "", earliest cooldown end or ""}, kind being
# "lease", "busy" (wait for a slot), "cooling" (every usable one cools down),
# "absent" (no live executor of the allowed accounts) or "none". A cooldown is
# the field "<account id>:<model>" of the cooldowns hash, holding {"label", "ends"};
# one past its end is ignored (and pruned by _COOLDOWNS).
_CHOOSE = (
    _PRUNE
    + _LIVE_ENTRY
    + """local model = ARGV[2]
local function set_of(text)
  local found = {}
  for _, item in ipairs(cjson.decode(text)) do found[tostring(item)] = true end
  return found
end
local allowed = nil
if ARGV[3] ~= '' then allowed = set_of(ARGV[3]) end
local preferred = set_of(ARGV[4])
local needed = cjson.decode(ARGV[5])
local excluded = {}
for i = 6, #ARGV do excluded[ARGV[i]] = true end
local function able(info)
  if allowed and not allowed[tostring(info.account_id)] then return false end
  if #needed == 0 then return true end
  local has = {}
  if type(info.features) == 'table' then
    for _, feature in ipairs(info.features) do has[feature] = true end
  end
  for _, feature in ipairs(needed) do
    if not has[feature] then return false end
  end
  return true
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
table.sort(ids)
local ends_of = {}
local function cooling_end(account)
  if ends_of[account] == nil then
    ends_of[account] = false
    local raw = redis.call('HGET', KEYS[5], account .. ':' .. model)
    if raw then
      local ends = tonumber(cjson.decode(raw).ends)
      if ends and ends > now then ends_of[account] = ends end
    end
  end
  return ends_of[account]
end
local tied, fewest, usable, earliest, seen = {}, nil, false, nil, false
for _, id in ipairs(ids) do
  local raw = live_entry(KEYS[1], id)
  local info = raw and cjson.decode(raw)
  if info and able(info) then
    seen = true
    local ends = cooling_end(tostring(info.account_id))
    if ends then
      if earliest == nil or ends < earliest then earliest = ends end
    elseif not excluded[id] then
      usable = true
      local n = tonumber(redis.call('HGET', KEYS[3], id) or '0')
      if n < info.max_concurrency then
        -- A preferred account ranks before every other, whatever their load.
        if not preferred[tostring(info.account_id)] then n = n + 1e15 end
        if fewest == nil or n < fewest then
          tied, fewest = {raw}, n
        elseif n == fewest then
          table.insert(tied, raw)
        end
      end
    end
  end
end
if allowed and not seen then return {'absent', '', ''} end
local until_text = earliest and string.format('%.6f', earliest) or ''
if fewest ~= nil then
  local chosen = tied[(redis.call('INCR', KEYS[4]) % #tied) + 1]
  redis.call('HINCRBY', KEYS[3], cjson.decode(chosen).connection_id, 1)
  return {'lease', chosen, until_text}
end
if usable then return {'busy', '', until_text} end
if earliest then return {'cooling', '', until_text} end
return {'none', '', ''}
"""
)

# KEYS: cooldowns hash. ARGV: now. Forgets the cooldowns that are over, in one
# step so that a fresh one set meanwhile by another process is never lost.
_COOLDOWNS = """
local now = tonumber(ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #entries, 2 do
  local ends = tonumber(cjson.decode(entries[i + 1]).ends)
  if ends and ends > now then
    table.insert(live, entries[i])
    table.insert(live, entries[i + 1])
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
return live
"""

# KEYS: in-flight hash. ARGV: executor id. Never below zero, never recreates a gone executor.
_RELEASE = """
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
"""

# KEYS: deadlines zset, in-flight hash. ARGV: connection id, deadline, tasks in flight.
# Only for a connection still registered, so a late heartbeat cannot revive one.
_HEARTBEAT = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


class RedisRegistry(Registry):
    # Polling instead of pub/sub keeps the waiting side simple; it only runs
    # while every executor is busy, and 50 ms is well under a model's latency.
    POLL_SECONDS = 0.05

    def __init__(
        self, url: str, prefix: str = "gemproxy:registry:", timeout: float = 2.0, process_prefix: str | None = None
    ) -> None:
        import redis.asyncio as redis

        from gemproxy_site.redis_options import async_client_options

        # A Redis that hangs must fail each command within ``timeout``: callers
        # then answer 503 at once, and heartbeats keep their schedule.
        self._redis = redis.Redis.from_url(url, **async_client_options(timeout))
        self._prefix = prefix
        self._executors = prefix + "executors"
        self._deadlines = prefix + "deadlines"
        self._in_flight = prefix + "in_flight"
        self._turn = prefix + "turn"
        self._cooldowns = prefix + "cooldowns"
        # Where executors.liveness keeps each process's key: the install's prefix + "process:".
        self._process_prefix = process_prefix or prefix.removesuffix("registry:") + "process:"
        self._choose = self._redis.register_script(_CHOOSE)
        self._list_cooldowns = self._redis.register_script(_COOLDOWNS)
        self._release = self._redis.register_script(_RELEASE)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._prune = self._redis.register_script(_PRUNE)

    async def register(self, info: ExecutorInfo, deadline: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._executors, info.connection_id, json.dumps(asdict(info)))
            pipe.hset(self._in_flight, info.connection_id, 0)
            pipe.zadd(self._deadlines, {info.connection_id: deadline})
            await pipe.execute()

    async def heartbeat(self, connection_id: str, deadline: float, in_flight: int) -> bool:
        found = await self._heartbeat(
            keys=[self._deadlines, self._in_flight], args=[connection_id, deadline, in_flight]
        )
        return bool(found)

    async def unregister(self, connection_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._executors, connection_id)
            pipe.hdel(self._in_flight, connection_id)
            pipe.zrem(self._deadlines, connection_id)
            await pipe.execute()

    async def choose(
        self,
        model: str,
        exclude: frozenset[str] = frozenset(),
        *,
        accounts: frozenset[int] | None = None,
        prefer: frozenset[int] = frozenset(),
        features: frozenset[str] = frozenset(),
    ) -> Choice:
        keys = [self._executors, self._deadlines, self._in_flight, self._turn, self._cooldowns, self._process_prefix]
        args: list[str | float] = [
            time.time(),
            model,
            "" if accounts is None else json.dumps(sorted(accounts)),
            json.dumps(sorted(prefer)),
            json.dumps(sorted(features)),
            *exclude,
        ]
        kind, raw, until = await self._choose(keys=keys, args=args)
        cooling_until = float(until) if until else None
        if kind != b"lease":
            return Choice(None, cooling_until, all_cooling=kind == b"cooling", absent=kind == b"absent")
        info = json.loads(raw)
        lease = Lease(
            info["connection_id"],
            info["channel_name"],
            info["account_id"],
            info["account_label"],
            info.get("process_id", ""),
        )
        return Choice(lease, cooling_until)

    async def release(self, lease: Lease) -> None:
        await self._release(keys=[self._in_flight], args=[lease.connection_id])

    async def cool_down(self, account_id: int, model: str, seconds: float, account_label: str = "") -> None:
        entry = {"label": account_label or f"account {account_id}", "model": model, "ends": time.time() + seconds}
        await self._redis.hset(self._cooldowns, f"{account_id}:{model}", json.dumps(entry))

    async def cooldowns(self) -> list[Cooldown]:
        entries = await self._list_cooldowns(keys=[self._cooldowns], args=[time.time()])
        found = []
        for field_name, raw in zip(entries[::2], entries[1::2], strict=True):
            entry = json.loads(raw)
            account_id = int(field_name.decode().split(":", 1)[0])
            found.append(Cooldown(account_id, entry["label"], entry["model"], float(entry["ends"])))
        return sorted(found, key=lambda c: (c.account_label, c.model))

    async def wait_for_change(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, self.POLL_SECONDS))

    async def snapshot(self) -> list[dict]:
        now = time.time()
        await self._prune(keys=[self._executors, self._deadlines, self._in_flight], args=[now])
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._executors)
            pipe.hgetall(self._in_flight)
            pipe.zrange(self._deadlines, 0, -1, withscores=True)
            executors, in_flight, deadlines = await pipe.execute()
        deadline_of = {key.decode(): score for key, score in deadlines}
        rows = []
        for key, raw in sorted(executors.items()):
            deadline = deadline_of.get(key.decode())
            if deadline is not None and deadline >= now:  # one without a deadline was never fully registered
                rows.append(_snapshot_row(json.loads(raw), int(in_flight.get(key, 0)), deadline))
        return await self._of_live_processes(rows)

    async def _of_live_processes(self, rows: list[dict]) -> list[dict]:
        """The rows whose gateway process lives, as ``choose`` sees them."""
        processes = sorted({row.get("process_id") or "" for row in rows} - {""})
        if not processes:
            return rows
        async with self._redis.pipeline(transaction=False) as pipe:
            for process in processes:
                pipe.exists(self._process_prefix + process)
            found = await pipe.execute()
        dead = {process for process, exists in zip(processes, found, strict=True) if not exists}
        return [row for row in rows if (row.get("process_id") or "") not in dead]


def _snapshot_row(info: dict, in_flight: int, deadline: float) -> dict:
    # A deadline is always set to "last sign of life + heartbeat timeout".
    return {**info, "in_flight": in_flight, "last_heartbeat": deadline - settings.GEMPROXY_HEARTBEAT_TIMEOUT}


@cache
def get_registry() -> Registry:
    """The process's registry, built once from settings."""
    registry_class = import_string(settings.GEMPROXY_REGISTRY)
    if registry_class is RedisRegistry:
        return RedisRegistry(
            settings.REDIS_URL,
            prefix=settings.REDIS_PREFIX + "registry:",
            timeout=settings.GEMPROXY_REDIS_TIMEOUT,
            process_prefix=settings.REDIS_PREFIX + "process:",
        )
    return registry_class()
