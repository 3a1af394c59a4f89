"""The executor registry picks fairly, never overloads, and forgets the dead: embedded and Redis alike."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from executors.registry import Choice, ExecutorInfo, LocalRegistry, RedisRegistry, Registry


@pytest.fixture(params=["local", "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    if request.param == "local":
        yield LocalRegistry()
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    shared = RedisRegistry(redis_url, prefix=prefix)
    yield shared
    await shared._redis.aclose()


def executor(name: str, slots: int = 2, account: int = 1) -> ExecutorInfo:
    return ExecutorInfo(
        connection_id=f"conn-{name}",
        executor_id=name,
        channel_name=f"channel-{name}",
        account_id=account,
        account_label=f"account-{account}",
        software="test/1",
        max_concurrency=slots,
        connected_at=time.time(),
    )


def alive() -> float:
    return time.time() + 60


async def test_it_picks_the_executor_with_fewest_tasks(registry: Registry) -> None:
    await registry.register(executor("a", slots=4), alive())
    await registry.register(executor("b", slots=4), alive())
    first = await registry.acquire("m")
    second = await registry.acquire("m")

    assert {first.connection_id, second.connection_id} == {"conn-a", "conn-b"}


async def test_ties_take_turns(registry: Registry) -> None:
    for name in "abc":
        await registry.register(executor(name, slots=1), alive())
    chosen = Counter()
    for _ in range(9):
        lease = await registry.acquire("m")
        chosen[lease.connection_id] += 1
        await registry.release(lease)

    assert chosen == {"conn-a": 3, "conn-b": 3, "conn-c": 3}


async def test_it_never_exceeds_an_executors_concurrency(registry: Registry) -> None:
    await registry.register(executor("a", slots=2), alive())

    leases = await asyncio.gather(*(registry.acquire("m") for _ in range(5)))

    assert sum(lease is not None for lease in leases) == 2


async def test_a_released_slot_can_be_taken_again(registry: Registry) -> None:
    await registry.register(executor("a", slots=1), alive())
    lease = await registry.acquire("m")
    assert await registry.acquire("m") is None

    await registry.release(lease)

    assert await registry.acquire("m") is not None


async def test_excluded_executors_are_skipped(registry: Registry) -> None:
    await registry.register(executor("a"), alive())
    await registry.register(executor("b"), alive())

    lease = await registry.acquire("m", frozenset({"conn-a"}))

    assert lease.connection_id == "conn-b"


async def test_a_cooled_down_account_is_skipped_for_that_model_only(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())
    await registry.register(executor("b", account=2), alive())
    await registry.cool_down(1, "gemini-2.5-pro", 30)

    pro = [await registry.acquire("gemini-2.5-pro") for _ in range(2)]
    flash = await registry.acquire("gemini-2.5-flash")

    assert [lease.connection_id for lease in pro] == ["conn-b", "conn-b"]
    assert flash.connection_id == "conn-a"


async def test_a_heartbeat_heals_a_slot_whose_release_never_came(registry: Registry) -> None:
    await registry.register(executor("a", slots=1), alive())
    await registry.acquire("m")  # its gateway process dies: no release follows
    assert await registry.acquire("m") is None

    await registry.heartbeat("conn-a", alive(), in_flight=0)

    assert await registry.acquire("m") is not None


async def test_a_heartbeat_does_not_revive_a_departed_executor(registry: Registry) -> None:
    await registry.register(executor("a"), alive())
    await registry.unregister("conn-a")

    await registry.heartbeat("conn-a", alive(), in_flight=0)

    assert await registry.snapshot() == []


async def test_an_executor_past_its_heartbeat_deadline_is_not_chosen(registry: Registry) -> None:
    await registry.register(executor("a"), time.time() - 1)

    assert await registry.acquire("m") is None


async def test_unregistered_executors_disappear_from_the_snapshot(registry: Registry) -> None:
    await registry.register(executor("a"), alive())
    await registry.register(executor("b"), alive())
    lease = await registry.acquire("m")

    await registry.unregister("conn-b")
    rows = await registry.snapshot()

    assert [row["executor_id"] for row in rows] == ["a"]
    assert rows[0]["in_flight"] == (1 if lease.connection_id == "conn-a" else 0)
    assert rows[0]["account_label"] == "account-1"


async def test_an_executor_past_its_deadline_is_not_counted_and_is_forgotten(registry: Registry) -> None:
    await registry.register(executor("gone"), time.time() - 1)
    await registry.register(executor("live"), alive())

    rows = await registry.snapshot()

    assert [row["executor_id"] for row in rows] == ["live"]
    assert await registry.heartbeat("conn-gone", alive(), in_flight=0) is False
    assert await registry.heartbeat("conn-live", alive(), in_flight=0) is True


async def test_when_every_account_cools_down_the_choice_says_so_and_when_the_first_is_free(
    registry: Registry,
) -> None:
    await registry.register(executor("a", account=1), alive())
    await registry.register(executor("b", account=2), alive())
    await registry.cool_down(1, "gemini-2.5-pro", 30)
    await registry.cool_down(2, "gemini-2.5-pro", 10)

    choice = await registry.choose("gemini-2.5-pro")

    assert (choice.lease, choice.all_cooling) == (None, True)
    assert choice.cooling_until == pytest.approx(time.time() + 10, abs=1)


async def test_busy_executors_of_an_account_not_cooling_mean_waiting_not_refusing(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())
    await registry.register(executor("b", slots=1, account=2), alive())
    await registry.cool_down(1, "m", 30)
    assert (await registry.choose("m")).lease.connection_id == "conn-b"

    choice = await registry.choose("m")

    assert (choice.lease, choice.all_cooling) == (None, False)
    assert choice.cooling_until == pytest.approx(time.time() + 30, abs=1)


async def test_without_executors_nothing_is_cooling(registry: Registry) -> None:
    await registry.cool_down(1, "m", 30)  # the account's executors are gone

    assert await registry.choose("m") == Choice(None, None, all_cooling=False)


async def test_excluded_executors_cannot_be_waited_for_but_their_cooldowns_count(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())
    await registry.register(executor("b", account=2), alive())
    await registry.cool_down(1, "m", 5)  # refused this call, and is the first free again
    await registry.cool_down(2, "m", 50)

    choice = await registry.choose("m", frozenset({"conn-a"}))

    assert choice.all_cooling
    assert choice.cooling_until == pytest.approx(time.time() + 5, abs=1)


async def test_an_excluded_executor_that_is_not_cooling_does_not_make_it_a_cooldown(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())  # lost this call's task, say

    choice = await registry.choose("m", frozenset({"conn-a"}))

    assert (choice.lease, choice.all_cooling, choice.cooling_until) == (None, False, None)


async def test_a_cooldown_ends_when_the_upstream_said(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())
    await registry.cool_down(1, "m", 0.3)
    assert (await registry.choose("m")).all_cooling

    await asyncio.sleep(0.4)

    assert (await registry.choose("m")).lease is not None
    assert await registry.cooldowns() == []


async def test_the_latest_refusal_sets_the_cooldown(registry: Registry) -> None:
    await registry.cool_down(1, "m", 3000, account_label="ana@example.com")
    await registry.cool_down(1, "m", 20, account_label="ana@example.com")

    [cooldown] = await registry.cooldowns()

    assert cooldown.until == pytest.approx(time.time() + 20, abs=1)


async def test_cooldowns_are_listed_by_account_and_model(registry: Registry) -> None:
    await registry.cool_down(2, "gemini-2.5-pro", 40, account_label="bob@example.com")
    await registry.cool_down(1, "gemini-2.5-flash", 20, account_label="ana@example.com")
    await registry.cool_down(1, "gemini-2.5-pro", 0.01, account_label="ana@example.com")
    await asyncio.sleep(0.05)

    rows = [(c.account_id, c.account_label, c.model) for c in await registry.cooldowns()]

    assert rows == [(1, "ana@example.com", "gemini-2.5-flash"), (2, "bob@example.com", "gemini-2.5-pro")]
