"""Who is copying which file to which account right now, across every gateway process.

Two calls in different Daphne processes that need the same copy must upload it
once: the first claims "(file, account)", the other waits for the placement the
first one remembers. Embedded, a claim lives in this process; with REDIS_URL it
is a Redis key (SET NX with an expiry, so a process that dies mid-copy frees
its claims by itself), chosen once like the registry and the counters.
"""

from __future__ import annotations

import time
import uuid
from functools import cache

import redis.asyncio as redis
from django.conf import settings

from gemproxy_site.redis_options import async_client_options

# Compare-and-delete: only the claimant frees a claim, never one that expired and was taken since.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class CopyClaims:
    async def claim(self, name: str, seconds: float) -> str | None:
        """A token when ``name`` was free and is now ours for ``seconds``; None when another holds it."""
        raise NotImplementedError

    async def release(self, name: str, token: str) -> None:
        raise NotImplementedError


class LocalCopyClaims(CopyClaims):
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def claim(self, name: str, seconds: float) -> str | None:
        now = time.monotonic()
        held = self._held.get(name)
        if held is not None and held[1] > now:
            return None
        token = uuid.uuid4().hex
        self._held[name] = (token, now + seconds)
        return token

    async def release(self, name: str, token: str) -> None:
        if self._held.get(name, ("", 0.0))[0] == token:
            del self._held[name]


class RedisCopyClaims(CopyClaims):
    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        self.url, self.prefix, self.timeout = url, prefix, timeout

    def _client(self) -> redis.Redis:
        # A client per use: redis.asyncio connections belong to the loop that opened them,
        # and a copy is rare enough (once per file and account) for a connection of its own.
        return redis.Redis.from_url(self.url, **async_client_options(self.timeout))

    async def claim(self, name: str, seconds: float) -> str | None:
        token = uuid.uuid4().hex
        async with self._client() as client:
            taken = await client.set(self.prefix + name, token, nx=True, px=int(seconds * 1000))
        return token if taken else None

    async def release(self, name: str, token: str) -> None:
        async with self._client() as client:
            await client.eval(_RELEASE, 1, self.prefix + name, token)


@cache
def get_copy_claims() -> CopyClaims:
    if settings.REDIS_URL:
        return RedisCopyClaims(settings.REDIS_URL, settings.REDIS_PREFIX + "copies:", settings.GEMPROXY_REDIS_TIMEOUT)
    return LocalCopyClaims()
