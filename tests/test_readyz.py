"""/readyz answers 200 only when the database, Redis (when configured) and at least one executor answer;
otherwise 503 with a JSON body naming what failed, within its timeout whatever hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executors.registry import ExecutorInfo, get_registry
from gateway import health
from tests.api_doubles import asgi_call
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.django_db(transaction=True)


def executor(connection_id: str = "conn-1") -> ExecutorInfo:
    return ExecutorInfo(
        connection_id=connection_id,
        executor_id="tab-1",
        channel_name="executor.tab-1",
        account_id=1,
        account_label="ana@example.com",
        software="test/1",
        max_concurrency=2,
        connected_at=time.time(),
    )


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def on_private_redis(settings, private_redis: PrivateRedis, redis_prefix: str) -> PrivateRedis:
    """A distributed deployment whose Redis the test may kill or freeze."""
    settings.REDIS_URL = private_redis.url
    settings.REDIS_PREFIX = redis_prefix
    settings.GEMPROXY_REGISTRY = "executors.registry.RedisRegistry"
    settings.GEMPROXY_REDIS_TIMEOUT = 0.5
    settings.GEMPROXY_READYZ_TIMEOUT = 1.0
    get_registry.cache_clear()
    return private_redis


async def readyz() -> tuple[int, dict, float]:
    started = time.monotonic()
    answer = await asgi_call("GET", "/readyz", wait=20)
    assert answer.headers["content-type"] == "application/json"
    return answer.status, answer.json(), time.monotonic() - started


async def test_ready_with_the_database_and_an_executor() -> None:
    await get_registry().register(executor(), time.time() + 60)

    status, body, _ = await readyz()

    assert status == 200
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["redis"] == {"ok": True, "detail": "not configured"}
    assert body["checks"]["executors"] == {"ok": True, "detail": "1 live"}


async def test_not_ready_without_an_executor() -> None:
    status, body, _ = await readyz()

    assert status == 503
    assert body["status"] == "not_ready"
    assert body["failed"] == ["executors"]
    assert body["checks"]["executors"]["detail"] == "no executor is connected"


async def test_not_ready_once_the_last_executor_is_past_its_heartbeat() -> None:
    await get_registry().register(executor(), time.time() + 0.2)
    assert (await readyz())[0] == 200
    await asyncio.sleep(0.3)

    assert (await readyz())[1]["failed"] == ["executors"]


async def test_ready_on_redis_with_an_executor(on_private_redis: PrivateRedis) -> None:
    await get_registry().register(executor(), time.time() + 60)

    status, body, _ = await readyz()

    assert (status, body["failed"]) == (200, [])
    assert body["checks"]["redis"] == {"ok": True, "detail": "ok"}


async def test_not_ready_while_redis_is_down_and_said_promptly(on_private_redis: PrivateRedis) -> None:
    await get_registry().register(executor(), time.time() + 60)
    on_private_redis.kill()

    status, body, seconds = await readyz()

    assert status == 503
    assert body["failed"] == ["redis", "executors"]  # the registry lives in Redis
    assert body["checks"]["database"]["ok"] is True
    assert on_private_redis.url not in str(body)
    assert seconds < 2.5


async def test_a_frozen_redis_is_not_ready_within_the_timeout(on_private_redis: PrivateRedis) -> None:
    await get_registry().register(executor(), time.time() + 60)
    on_private_redis.freeze()
    try:
        status, body, seconds = await readyz()
    finally:
        on_private_redis.thaw()

    assert status == 503
    assert "redis" in body["failed"]
    assert seconds < 2.5  # the timeout of 1 s, and some


async def test_ready_again_when_redis_is_back(on_private_redis: PrivateRedis) -> None:
    await get_registry().register(executor(), time.time() + 60)
    on_private_redis.freeze()
    assert (await readyz())[0] == 503
    on_private_redis.thaw()

    assert (await readyz())[0] == 200


async def test_a_database_that_hangs_is_not_ready_within_the_timeout(settings, monkeypatch) -> None:
    settings.GEMPROXY_READYZ_TIMEOUT = 0.5
    await get_registry().register(executor(), time.time() + 60)
    monkeypatch.setattr(health, "_select_one", lambda: time.sleep(3))

    status, body, seconds = await readyz()

    assert (status, body["failed"]) == (503, ["database"])
    assert body["checks"]["database"]["detail"] == "no answer within 0.5s"
    assert seconds < 1.5


async def test_a_database_that_refuses_is_not_ready(settings, monkeypatch) -> None:
    from django.db import OperationalError

    def refuse() -> None:
        raise OperationalError('connection to server at "db.internal" failed: password authentication failed')

    await get_registry().register(executor(), time.time() + 60)
    monkeypatch.setattr(health, "_select_one", refuse)

    status, body, _ = await readyz()

    assert (status, body["failed"]) == (503, ["database"])
    assert body["checks"]["database"]["detail"] == "unavailable (OperationalError)"
    assert "db.internal" not in str(body)  # an error's text may name hosts and users


async def test_readyz_needs_no_allowed_host(settings) -> None:
    """Kubernetes probes a pod by its address, which ALLOWED_HOSTS does not list."""
    settings.ALLOWED_HOSTS = ["gemproxy.example.com"]
    await get_registry().register(executor(), time.time() + 60)

    answer = await asgi_call("GET", "/readyz", headers={"host": "10.1.2.3:8000"})

    assert answer.status == 200
