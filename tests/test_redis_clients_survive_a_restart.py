"""Right after a Redis restart, the first command of each Redis client succeeds: no stale pooled connection fails it.

After a restart every pooled connection is dead; without a retry on a broken
connection the first command on each fails, a 503 for a call or a missed
registry refresh although Redis answers again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.counters.in_redis import RedisCounters
from accounts.policy import Limits
from executors.registry import RedisRegistry
from tests.private_redis import PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def restart(server: PrivateRedis) -> None:
    server.kill()
    server.start()


async def test_the_registry_answers_its_first_command_after_a_restart(private_redis: PrivateRedis) -> None:
    registry = RedisRegistry(private_redis.url, prefix="restart:")
    assert await registry.snapshot() == []

    restart(private_redis)

    assert await registry.snapshot() == []


async def test_the_async_counters_answer_their_first_command_after_a_restart(private_redis: PrivateRedis) -> None:
    counters = RedisCounters(private_redis.url, prefix="restart:q:")
    await counters.peek(1)

    restart(private_redis)

    assert (await counters.acquire(1, Limits(rpd=5), 0)).counts.rpd == 1  # type: ignore[union-attr]
    await counters.aclose()
