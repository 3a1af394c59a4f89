"""The options every Redis client of gemproxy is built with, so that an outage ends as soon as Redis does.

- Connects and commands give up after ``timeout`` seconds: a Redis that hangs
  instead of refusing still gets callers a prompt 503 (redis-py waits 5 s).
- One immediate retry on a broken connection: after a Redis restart every
  pooled connection is stale, and without it the first command on each fails,
  a 503 for a call (or a missed heartbeat) although Redis answers again. Not on
  a timeout, which would double the wait. A command sent just before the break
  may so run twice: counts are healed by the next heartbeat, and the release
  and register scripts are safe to repeat.
"""

from __future__ import annotations

from typing import Any

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def async_client_options(timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` or its connection pool."""
    from redis.asyncio.retry import Retry

    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": retry}


def sync_client_options(timeout: float) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url``."""
    from redis.retry import Retry

    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": retry}
