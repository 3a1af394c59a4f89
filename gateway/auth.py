"""Proxy-key authentication: find the client's key, check it, and keep it away from everything else."""

from __future__ import annotations

import hashlib
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.limits import Rejection
from accounts.models import ProxyKey
from gateway.errors import ApiError, invalid_api_key, missing_api_key

# Cache of recent lookups, keyed by an unkeyed hash of the secret so the
# secrets themselves are not kept: {sha256: (valid_until, key)}.
_recent: dict[bytes, tuple[float, ProxyKey]] = {}
_MAX_CACHED = 10_000


def secret_from(request: HttpRequest) -> str:
    """The key as SDKs (x-goog-api-key), REST examples (?key=) or OpenAI clients (Bearer) send it."""
    header = request.headers.get("x-goog-api-key")
    if header:
        return header.strip()
    query = request.GET.get("key")
    if query:
        return query.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return ""


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
        key = await sync_to_async(_lookup)(secret)
    except Rejection as rejection:
        if rejection.message == invalid_api_key().message:
            raise invalid_api_key() from rejection
        raise ApiError(rejection.http_status, rejection.status, rejection.message, outcome=rejection.reason) from None
    if len(_recent) >= _MAX_CACHED:
        _recent.clear()
    _recent[fingerprint] = (now + settings.GEMPROXY_AUTH_CACHE_SECONDS, key)
    return key


def forget_cached_keys() -> None:
    """For tests and admin actions that must take effect at once in this process."""
    _recent.clear()
