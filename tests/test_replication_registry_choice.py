"""The registry honours where a call's resources live: only some accounts, some preferred, some features needed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from executors.registry import LocalRegistry, RedisRegistry, Registry
from tests.test_registry import alive, executor


@pytest.fixture(params=["local", "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    if request.param == "local":
        yield LocalRegistry()
        return
    shared = RedisRegistry(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    yield shared
    await shared._redis.aclose()


async def test_only_the_allowed_accounts_serve(registry: Registry) -> None:
    await registry.register(executor("a", slots=4, account=1), alive())
    await registry.register(executor("b", slots=4, account=2), alive())

    chosen = {(await registry.choose("m", accounts=frozenset({2}))).lease.account_id for _ in range(4)}

    assert chosen == {2}


async def test_no_executor_of_the_allowed_accounts_is_absent_not_busy(registry: Registry) -> None:
    await registry.register(executor("a", account=1), alive())

    choice = await registry.choose("m", accounts=frozenset({7}))

    assert choice.lease is None and choice.absent


async def test_a_busy_allowed_account_is_busy_not_absent(registry: Registry) -> None:
    await registry.register(executor("a", slots=1, account=1), alive())
    await registry.acquire("m")

    choice = await registry.choose("m", accounts=frozenset({1}))

    assert choice.lease is None and not choice.absent and not choice.all_cooling


async def test_a_preferred_account_wins_even_when_busier(registry: Registry) -> None:
    await registry.register(executor("a", slots=4, account=1), alive())
    await registry.register(executor("b", slots=4, account=2), alive())
    await registry.choose("m", accounts=frozenset({2}))  # b now has more in flight than a

    chosen = [(await registry.choose("m", prefer=frozenset({2}))).lease.account_id for _ in range(3)]

    assert chosen == [2, 2, 2]


async def test_a_full_preferred_account_gives_way_to_another(registry: Registry) -> None:
    await registry.register(executor("a", slots=4, account=1), alive())
    await registry.register(executor("b", slots=1, account=2), alive())
    first = await registry.choose("m", prefer=frozenset({2}))
    second = await registry.choose("m", prefer=frozenset({2}))

    assert (first.lease.account_id, second.lease.account_id) == (2, 1)


async def test_executors_without_a_needed_feature_are_left_out(registry: Registry) -> None:
    await registry.register(executor("old", slots=4, account=1), alive())
    capable = dataclasses.replace(executor("new", slots=4, account=2), features=("binary_body",))
    await registry.register(capable, alive())

    chosen = {(await registry.choose("m", features=frozenset({"binary_body"}))).lease.connection_id for _ in range(3)}
    plain = await registry.choose("m")

    assert chosen == {"conn-new"}
    assert plain.lease.connection_id == "conn-old"  # a task that needs nothing may go to either


async def test_an_account_whose_only_executor_lacks_a_feature_is_absent(registry: Registry) -> None:
    await registry.register(executor("old", account=1), alive())

    choice = await registry.choose("m", accounts=frozenset({1}), features=frozenset({"binary_body"}))

    assert choice.absent
