"""A connection that ends while Redis is away still leaves the registry, as soon as Redis answers.

Found by bench/soak.py with a persistent Redis (AOF): a connection closed
during the outage could not unregister, the restart brought its entry back,
and it looked live, with busy slots, until its heartbeat deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from executors import consumer
from executors.registry import get_registry
from tests.executor_sockets import connect_executor, new_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_registry() -> None:
    get_registry.cache_clear()


async def test_an_entry_that_could_not_leave_during_an_outage_leaves_once_redis_answers(monkeypatch) -> None:
    token = await asyncio.to_thread(new_token, "ana@example.com")
    monkeypatch.setattr(consumer, "REGISTRY_RETRY_SECONDS", 0.05)
    socket = await connect_executor(token)
    for _ in range(100):
        if await get_registry().snapshot():
            break
        await asyncio.sleep(0.02)
    registry = get_registry()
    real_unregister = registry.unregister
    failures = 3

    async def unregister_during_an_outage(connection_id: str) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("Redis is away")
        await real_unregister(connection_id)

    monkeypatch.setattr(registry, "unregister", unregister_during_an_outage)
    await socket.disconnect()

    for _ in range(100):
        if not await registry.snapshot():
            break
        await asyncio.sleep(0.02)
    assert await registry.snapshot() == []
    assert failures == 0
