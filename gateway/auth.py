"""Proxy-key authentication: find the client's key, check it, and keep it away from everything else."""

from __future__ import annotations

import asyncio
import hashlib
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.authentication import secret_from
from accounts.models import ProxyKey
from accounts.rejections import Rejection
from gateway.errors import ApiError, missing_api_key

# Cache of recent lookups, keyed by an unkeyed hash of the secret so the
# secrets themselves are not kept: {sha256: (valid_until, key)}.
_recent: dict[bytes, tuple[float, ProxyKey]] = {}
_MAX_CACHED = 10_000
# Lookups under way, by the same hash. When a key's cached entry lapses while
# its member's tools have fifty calls in flight, one query answers them all,
# not fifty in the database's thread at once (measured: 3% of the gateway's
# CPU at 50 clients, and as many queries).
_looking_up: dict[bytes, asyncio.Task[ProxyKey]] = {}


def _lookup(secret: str) -> ProxyKey:
    key = ProxyKey.objects.authenticate(secret)
    ProxyKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key


async def _look_up(fingerprint: bytes, secret: str) -> ProxyKey:
    try:
        key = await database_sync_to_async(_lookup)(secret)
    finally:
        if _looking_up.get(fingerprint) is asyncio.current_task():  # not another event loop's lookup
            del _looking_up[fingerprint]
    if len(_recent) >= _MAX_CACHED:
        _recent.clear()
    _recent[fingerprint] = (time.monotonic() + settings.GEMPROXY_AUTH_CACHE_SECONDS, key)
    return key


def _retrieve(lookup: asyncio.Task[ProxyKey]) -> None:
    if not lookup.cancelled():
        lookup.exception()


async def authenticate(request: HttpRequest) -> ProxyKey:
    secret = secret_from(request)
    if not secret:
        raise missing_api_key()
    fingerprint = hashlib.sha256(secret.encode()).digest()
    cached = _recent.get(fingerprint)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    lookup = _looking_up.get(fingerprint)
    if lookup is None or lookup.get_loop() is not asyncio.get_running_loop():
        lookup = _looking_up[fingerprint] = asyncio.ensure_future(_look_up(fingerprint, secret))
        lookup.add_done_callback(_retrieve)  # even if every caller left before it ended
    try:
        # Shielded: a caller that leaves does not take the others' answer with it.
        return await asyncio.shield(lookup)
    except Rejection as rejection:
        raise ApiError.from_rejection(rejection) from None
