"""Secrets shown once: generated here, stored as a prefix plus a keyed hash.

The prefix finds the row; the HMAC digest proves the secret. Both proxy keys
and executor tokens use this, so neither is ever stored or compared in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings

PREFIX_LENGTH = 12


@dataclass(frozen=True)
class IssuedSecret:
    secret: str  # shown to the person once, never stored
    prefix: str
    digest: str


def _hmac_key() -> bytes:
    return hashlib.sha256(b"gemproxy-secret-token:" + settings.SECRET_KEY.encode()).digest()


def digest(secret: str) -> str:
    return hmac.new(_hmac_key(), secret.encode(), hashlib.sha256).hexdigest()


def issue(kind: str) -> IssuedSecret:
    """A new secret like ``gpk_Xy...``; ``kind`` tells keys and tokens apart at a glance."""
    secret = f"{kind}_{secrets.token_urlsafe(32)}"
    return IssuedSecret(secret=secret, prefix=secret[:PREFIX_LENGTH], digest=digest(secret))


def prefix_of(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
