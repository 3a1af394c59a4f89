"""Health checks for load balancers, Kubernetes probes and scripts.

``/healthz``: the gateway process is alive (always 200 while it answers), with
its executors, slots and cooldowns for a person or a script to read. A
liveness probe must not fail because executors are away: restarting the
gateway would not bring them back, and it would drop every open stream.
``/readyz``: it can serve right now: the database answers, Redis answers (when
configured), and at least one executor is live. Each check has its own short
timeout, so the answer comes within ``GEMPROXY_READYZ_TIMEOUT`` whatever hangs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.http import HttpRequest, JsonResponse

from executors.registry import Cooldown, get_registry
from gemproxy_site.redis_options import async_client_options


def _cooldown_row(cooldown: Cooldown, now: float) -> dict:
    # Labels and model names only: nothing here helps anyone call the upstream.
    return {
        "account": cooldown.account_label,
        "model": cooldown.model,
        "seconds_left": max(1, math.ceil(cooldown.until - now)),
        "until": datetime.fromtimestamp(cooldown.until, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


async def healthz(request: HttpRequest) -> JsonResponse:
    registry = get_registry()
    executors = await registry.snapshot()
    cooldowns = await registry.cooldowns()
    now = time.time()
    slots = sum(row["max_concurrency"] for row in executors)
    busy = sum(row["in_flight"] for row in executors)
    return JsonResponse(
        {
            "status": "ok" if executors else "no_executors",
            "executors": len(executors),
            "slots": slots,
            "busy": busy,
            "cooldowns": [_cooldown_row(cooldown, now) for cooldown in cooldowns],
        }
    )


def _select_one() -> None:
    close_old_connections()  # a connection the database dropped is replaced, not failed on
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _database() -> str:
    # Off the thread the ORM shares with the consumers: a hung database must not hold it.
    await sync_to_async(_select_one, thread_sensitive=False)()
    return "ok"


async def _redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.REDIS_URL, **async_client_options(settings.GEMPROXY_READYZ_TIMEOUT))
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "ok"


class _NotReady(Exception):
    pass


async def _executors() -> str:
    live = len(await get_registry().snapshot())
    if not live:
        raise _NotReady("no executor is connected")
    return f"{live} live"


async def _check(probe: Callable[[], Awaitable[str]]) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(settings.GEMPROXY_READYZ_TIMEOUT):
            return True, await probe()
    except TimeoutError:
        return False, f"no answer within {settings.GEMPROXY_READYZ_TIMEOUT:g}s"
    except _NotReady as reason:
        return False, str(reason)
    except Exception as error:  # the name of the failure, not its text: that may hold a URL
        return False, f"unavailable ({type(error).__name__})"


async def readyz(request: HttpRequest) -> JsonResponse:
    names = ("database", "redis", "executors")
    results = await asyncio.gather(_check(_database), _check(_redis), _check(_executors))
    checks = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in zip(names, results, strict=True)}
    failed = [name for name, (ok, _) in zip(names, results, strict=True) if not ok]
    return JsonResponse(
        {"status": "not_ready" if failed else "ready", "failed": failed, "checks": checks},
        status=503 if failed else 200,
        headers={"Cache-Control": "no-store"},
    )
