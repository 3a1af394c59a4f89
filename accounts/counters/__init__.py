"""Quota counters: the one place that knows where counts live.

Two implementations behind one interface, chosen once from settings:
``in_process`` (embedded deployment, one process) and ``in_redis`` (any number
of processes, atomic Lua scripts, one round trip per call). Windows are fixed
and aligned: a minute is a calendar minute, a day a UTC day, so a refusal can
say exactly when the window resets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from accounts.policy import Limits

MINUTE = 60
DAY = 86400


class CountersUnavailable(Exception):
    """The counters cannot be reached; the call is refused rather than let through uncounted."""


@dataclass(frozen=True)
class Counts:
    """What a key has used in the current windows, and the time they were read (unix seconds)."""

    rpm: int = 0
    rpd: int = 0
    tpm: int = 0
    tpd: int = 0
    concurrency: int = 0
    now: float = 0.0


@dataclass(frozen=True)
class Grant:
    """A call let through: what it reserved, so that settling can undo or adjust it."""

    key_id: int
    limits: Limits
    minute: int
    day: int
    estimate: int
    lease_id: str  # "" when there is no concurrency limit
    counts: Counts  # after this call was counted

    @property
    def needs_settle(self) -> bool:
        return bool(self.lease_id or self.limits.counts_tokens)


@dataclass(frozen=True)
class Denial:
    """A call refused: which limit, how much was used, when the window resets (None: when a slot frees)."""

    limit: str  # "rpm", "rpd", "tpm", "tpd" or "concurrency"
    used: int
    reset_at: float | None
    now: float


class Counters(Protocol):
    lease_seconds: float

    async def acquire(self, key_id: int, limits: Limits, estimate: int) -> Grant | Denial:
        """Check every window of the call and count it in all of them, atomically."""

    async def settle(self, grant: Grant, tokens_used: int) -> None:
        """Replace the token reservation by the real use and release the concurrency lease."""

    async def renew(self, grant: Grant) -> None:
        """Extend the call's concurrency lease; it expires by itself when nobody renews it."""

    async def peek(self, key_id: int) -> Counts:
        """Current use without counting anything."""

    def counts_now(self, key_ids: list[int]) -> dict[int, Counts]:
        """``peek`` for synchronous views (admin, self-service), several keys at once."""


def window_of(now: float) -> tuple[int, int]:
    return int(now // MINUTE), int(now // DAY)


def lease_seconds() -> float:
    return float(getattr(settings, "GEMPROXY_LEASE_SECONDS", 60.0))


def _implementation_path() -> str:
    configured = getattr(settings, "GEMPROXY_COUNTERS", "")
    if configured:
        return configured
    if getattr(settings, "REDIS_URL", ""):
        return "accounts.counters.in_redis.RedisCounters"
    return "accounts.counters.in_process.InProcessCounters"


_counters: Counters | None = None


def get_counters() -> Counters:
    global _counters
    if _counters is None:
        _counters = import_string(_implementation_path()).from_settings()
    return _counters


@receiver(setting_changed)
def _forget_counters(*, setting: str, **kwargs) -> None:
    global _counters
    if setting in {"GEMPROXY_COUNTERS", "REDIS_URL", "REDIS_PREFIX", "GEMPROXY_LEASE_SECONDS"}:
        _counters = None
