"""A dead gateway process's executors stop being chosen, and a dispatcher gives up on them only when it is dead.

Real Redis, a key prefix of each test's own. A process is dead for the
others when its liveness key (``<prefix>process:<id>``) is gone: it expired,
because the process stopped refreshing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from executors import liveness
from executors.liveness import ProcessWatch, RedisLiveness, process_key
from executors.registry import ExecutorInfo, RedisRegistry


@pytest.fixture
async def shared(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[RedisRegistry, aredis.Redis, str]]:
    registry = RedisRegistry(redis_url, prefix=redis_prefix + "registry:")
    client = aredis.Redis.from_url(redis_url)
    yield registry, client, redis_prefix
    await registry._redis.aclose()
    await client.aclose()


def executor(name: str, process_id: str) -> ExecutorInfo:
    return ExecutorInfo(
        connection_id=f"conn-{name}",
        executor_id=name,
        channel_name=f"channel-{name}",
        account_id=1,
        account_label="account-1",
        software="test/1",
        max_concurrency=4,
        connected_at=time.time(),
        process_id=process_id,
    )


async def test_executors_of_a_process_without_a_liveness_key_are_not_chosen(shared) -> None:
    registry, client, prefix = shared
    await client.set(process_key(prefix, "alive-process"), "1", px=10_000)
    await registry.register(executor("on-dead", "dead-process"), time.time() + 60)
    await registry.register(executor("on-alive", "alive-process"), time.time() + 60)

    chosen = {(await registry.acquire("m")).connection_id for _ in range(4)}

    assert chosen == {"conn-on-alive"}


async def test_none_is_chosen_when_the_only_process_is_dead_and_it_is_chosen_again_once_it_announces(shared) -> None:
    registry, client, prefix = shared
    await registry.register(executor("a", "slow-process"), time.time() + 60)

    assert await registry.acquire("m") is None
    assert await registry.snapshot() == []

    await client.set(process_key(prefix, "slow-process"), "1", px=10_000)  # it was only slow: its entry is still there
    lease = await registry.acquire("m")
    assert lease is not None and lease.process_id == "slow-process"
    assert [row["connection_id"] for row in await registry.snapshot()] == ["conn-a"]


async def test_an_entry_that_names_no_process_is_chosen_as_before(shared) -> None:
    registry, _, _ = shared
    await registry.register(executor("old", ""), time.time() + 60)

    assert (await registry.acquire("m")).connection_id == "conn-old"


async def test_a_process_announces_itself_with_a_key_that_expires(redis_url, redis_prefix) -> None:
    announcer = RedisLiveness(redis_url, redis_prefix, ttl=0.6, timeout=1.0)
    watcher = RedisLiveness(redis_url, redis_prefix, ttl=0.6, timeout=1.0)
    watcher.process_id = "another-process"
    announcer.ensure_running()
    await asyncio.sleep(0.2)
    assert await watcher.alive(announcer.process_id) is True

    assert announcer._announcer is not None
    announcer._announcer.cancel()  # the process dies: nothing refreshes its key
    await asyncio.sleep(0.8)
    assert await watcher.alive(announcer.process_id) is False
    await announcer._redis.aclose()
    await watcher._redis.aclose()


async def test_an_unreachable_redis_tells_nothing_about_a_process() -> None:
    blind = RedisLiveness("redis://127.0.0.1:1", "x:", ttl=10, timeout=0.2)
    blind.process_id = "me"

    assert await blind.alive("other") is None


class ScriptedLiveness(liveness.Liveness):
    def __init__(self, answers: list[bool | None]) -> None:
        self.answers = answers

    async def alive(self, process_id: str) -> bool | None:
        return self.answers.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_watch_calls_a_process_dead_only_once_its_key_was_missing_for_the_grace() -> None:
    clock = Clock()
    # A Redis restart: the key is gone for a moment, then the process announces itself again.
    watch = ProcessWatch(ScriptedLiveness([False, False, True, False, False, False, False]), "p", clock)
    verdicts = []
    for _ in range(7):
        clock.now += liveness.CHECK_SECONDS
        verdicts.append(await watch.dead())

    assert verdicts == [False, False, False, False, False, False, True]


async def test_a_watch_never_calls_a_process_dead_while_redis_cannot_answer() -> None:
    clock = Clock()
    watch = ProcessWatch(ScriptedLiveness([False, None, False, None, False, None]), "p", clock)
    verdicts = []
    for _ in range(6):
        clock.now += liveness.CHECK_SECONDS * 2
        verdicts.append(await watch.dead())

    assert verdicts == [False] * 6


async def test_a_watch_does_not_ask_before_its_check_is_due() -> None:
    clock = Clock()
    watch = ProcessWatch(ScriptedLiveness([]), "p", clock)  # any question would fail: no answers left

    assert await watch.dead() is False
    assert watch.due() == pytest.approx(liveness.CHECK_SECONDS)


def test_the_own_process_is_never_watched() -> None:
    assert liveness.watch_process(liveness.get_liveness().process_id, time.monotonic) is None
    assert liveness.watch_process("", time.monotonic) is None


class OutageLiveness(liveness.Liveness):
    """A Redis that went away and came back, as the process's announcer saw it."""

    async def alive(self, process_id: str) -> bool | None:
        raise AssertionError("an attempt on this process never asks")


def test_an_attempt_silent_since_redis_came_back_is_lost_after_the_silence_limit() -> None:
    clock, seen = Clock(), OutageLiveness()
    watch = ProcessWatch(seen, "", clock)
    seen.outages, seen.failing = 1, True
    clock.now += 30  # a long outage: nothing can be told while it lasts
    assert watch.lost_in_outage() is False

    seen.failing, seen.answering_since = False, clock.now
    clock.now += liveness.SILENCE_AFTER_OUTAGE_SECONDS - 0.5
    assert watch.lost_in_outage() is False
    clock.now += 1
    assert watch.lost_in_outage() is True


def test_an_attempt_that_hears_frames_after_an_outage_is_not_lost() -> None:
    clock, seen = Clock(), OutageLiveness()
    watch = ProcessWatch(seen, "", clock)
    seen.outages, seen.answering_since = 1, clock.now + 1
    for _ in range(30):
        clock.now += 1
        watch.heard()
        assert watch.lost_in_outage() is False


def test_an_attempt_started_after_an_outage_is_not_affected_by_it() -> None:
    clock, seen = Clock(), OutageLiveness()
    seen.outages, seen.answering_since = 3, clock.now
    watch = ProcessWatch(seen, "", clock)

    clock.now += 600
    assert watch.lost_in_outage() is False


async def test_the_announcer_counts_a_redis_restart_that_no_refresh_saw_fail(tmp_path) -> None:
    import shutil

    from tests.private_redis import PrivateRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    announcer = RedisLiveness(server.url, "restart:", ttl=5, timeout=0.5)
    try:
        announcer.ensure_running()
        await asyncio.sleep(0.3)
        assert announcer.outages == 0
        server.kill()
        server.start()  # well within one refresh
        for _ in range(40):
            if announcer.outages and not announcer.failing:
                break
            await asyncio.sleep(0.1)

        assert announcer.outages >= 1 and not announcer.failing
        assert announcer.answering_since > 0
    finally:
        assert announcer._announcer is not None
        announcer._announcer.cancel()
        await announcer._redis.aclose()
        server.kill()
