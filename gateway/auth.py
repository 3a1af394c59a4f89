"""Proxy-key authentication: find the client's key, check it, and keep it away from everything else."""

from __future__ import annotations

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


def _lookup(secret: str) -> ProxyKey:
    key = ProxyKey.objects.authenticate(secret)
    ProxyKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key


async def authenticate(request: HttpRequest) -> ProxyKey:
    secret = secret_from(request)
    if not secret:
        raise missing_api_key()
    fingerprint = hashlib.sha256(secret.encode()).digest()
    now = time.monotonic()
    cached = _recent.get(fingerprint)
    if cached and cached[0] > now:
        return cached[1]
    try:
        key = await database_sync_to_async(_lookup)(secret)
    except Rejection as rejection:
        raise ApiError.from_rejection(rejection) from None
    if len(_recent) >= _MAX_CACHED:
        _recent.clear()
    _recent[fingerprint] = (now + settings.GEMPROXY_AUTH_CACHE_SECONDS, key)
    return key
