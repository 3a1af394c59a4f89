"""What a member sees of their own keys: limits in force and what remains of each now.

Shared by the self-service pages and the ``/api/v1/me`` API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest

from accounts.counters import DAY, MINUTE, CountersUnavailable, Counts, get_counters
from accounts.limits import LIMIT_DESCRIPTIONS
from accounts.models import ProxyKey


@dataclass
class LimitNow:
    name: str  # "rpm", "rpd", "tpm", "tpd", "concurrency"
    description: str
    size: int
    used: int | None  # None when the counters cannot be read
    resets_in: int | None  # seconds; None for concurrency

    @property
    def remaining(self) -> int | None:
        return None if self.used is None else max(0, self.size - self.used)

    @property
    def used_share(self) -> float:
        return 0.0 if not self.used else min(100.0, round(self.used / self.size * 100, 1))


@dataclass
class KeySummary:
    key: ProxyKey
    limits: list[LimitNow] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return list(self.key.policy.model_patterns)

    @property
    def networks(self) -> list[str]:
        return [str(net) for net in self.key.policy.networks]


def _resets_in(name: str, now: float) -> int | None:
    if name in ("rpm", "tpm"):
        return math.ceil((math.floor(now / MINUTE) + 1) * MINUTE - now)
    if name in ("rpd", "tpd"):
        return math.ceil((math.floor(now / DAY) + 1) * DAY - now)
    return None


def _limits_now(key: ProxyKey, counts: Counts | None) -> list[LimitNow]:
    limits = key.policy.limits
    rows = []
    for name, description in LIMIT_DESCRIPTIONS.items():
        size = getattr(limits, name)
        if size:
            used = getattr(counts, name) if counts else None
            rows.append(LimitNow(name, description, size, used, _resets_in(name, counts.now) if counts else None))
    return rows


def key_summaries(user) -> list[KeySummary]:
    keys = list(ProxyKey.objects.filter(user=user).select_related("user", "user__default_limits"))
    try:
        counts = get_counters().counts_now([key.pk for key in keys if key.policy.limits.any])
    except CountersUnavailable:
        counts = {}
    return [KeySummary(key, _limits_now(key, counts.get(key.pk))) for key in keys]


def base_url(request: HttpRequest) -> str:
    """The gateway's address as tools should use it."""
    return getattr(settings, "PUBLIC_BASE_URL", "") or request.build_absolute_uri("/").rstrip("/")
