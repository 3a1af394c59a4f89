"""Admission of a call against its key's rules and limits.

The gateway calls ``admit`` once per authenticated call, and
``Admission.settle`` exactly once at the end, in ``finally``.

Rules (expiry, IP allow-list, allowed models) are checked here in memory.
Limits are counted by ``accounts.counters``: every window of a call is
checked and counted in one atomic step. Token limits reserve an estimate
from the request's size, and settling replaces it by the real use. The
concurrency slot is a lease that expires unless renewed, so a call whose
settle never runs (a crashed process, a lost task) cannot hold it for long.

Headers on a successful answer, for each limit the key has:
``x-ratelimit-{limit,remaining,reset}-requests`` (per minute),
``x-ratelimit-{limit,remaining}-requests-day``,
``x-ratelimit-{limit,remaining,reset}-tokens`` (per minute, after the reservation),
``x-ratelimit-{limit,remaining}-tokens-day``,
``x-ratelimit-{limit,remaining}-concurrent``. Resets are in seconds, like ``12s``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from accounts import leases, rejections
from accounts.counters import MINUTE, Counters, CountersUnavailable, Denial, Grant, get_counters
from accounts.models import ProxyKey
from accounts.policy import Limits
from accounts.rejections import Rejection

__all__ = ["Admission", "Rejection", "admit", "estimate_tokens"]

logger = logging.getLogger(__name__)

LIMIT_DESCRIPTIONS = {
    "rpm": "requests per minute",
    "rpd": "requests per day",
    "tpm": "tokens per minute",
    "tpd": "tokens per day",
    "concurrency": "concurrent requests",
}


def estimate_tokens(request_body: bytes) -> int:
    """A cheap guess at a call's tokens to reserve: about four bytes per token, capped.

    The cap keeps large inline images (base64, a few hundred real tokens) from
    being refused by a small per-minute limit; the real use is settled anyway.
    """
    cap = getattr(settings, "GEMPROXY_TOKEN_ESTIMATE_MAX", 4096)
    return max(1, min(len(request_body) // 4, cap))


@dataclass
class Admission:
    key: ProxyKey
    headers: dict[str, str] = field(default_factory=dict)
    grant: Grant | None = field(default=None, repr=False)
    counters: Counters | None = field(default=None, repr=False)
    _settled: bool = field(default=False, repr=False)

    async def settle(self, tokens_used: int) -> None:
        """Replace the reservation by what the call really used and free its slot; safe to call twice.

        Runs in ``finally``, possibly in a cancelled task: one short round trip at most.
        """
        if self._settled:
            return
        self._settled = True
        leases.keeper.release(self)
        if self.grant is None or self.counters is None or not self.grant.needs_settle:
            return
        try:
            await self.counters.settle(self.grant, max(0, int(tokens_used)))
        except CountersUnavailable:
            # The lease expires by itself; the reservation stays counted.
            logger.warning("could not settle the quota of key %s", self.key.prefix)


async def admit(key: ProxyKey, *, model: str, client_ip: str, request_body: bytes) -> Admission:
    """Let the call through and count it, or raise the ``Rejection`` that says which rule or limit refused it."""
    if key.expires_at is not None and key.is_expired():
        raise rejections.expired_key(key.prefix, key.expires_at)
    key.check_client_ip(client_ip)
    policy = key.policy
    if not policy.allows_model(model):
        raise rejections.model_not_allowed(key.prefix, model, policy.model_patterns)
    limits = policy.limits
    if not limits.any:
        return Admission(key=key)

    estimate = estimate_tokens(request_body) if model and limits.counts_tokens else 0
    counters = get_counters()
    try:
        result = await counters.acquire(key.pk, limits, estimate)
    except CountersUnavailable as exc:
        logger.error("quota counters unavailable: %s", exc)
        raise rejections.counters_unavailable() from exc
    if isinstance(result, Denial):
        raise _over_limit(key, limits, result, estimate)

    admission = Admission(key=key, headers=rate_headers(limits, result), grant=result, counters=counters)
    if result.lease_id:
        leases.keeper.keep(admission, counters, result)
    return admission


def _over_limit(key: ProxyKey, limits: Limits, denial: Denial, estimate: int) -> Rejection:
    size = getattr(limits, denial.limit)
    detail = ""
    if denial.limit in ("tpm", "tpd"):
        detail = f" ({denial.used} used, this request reserves about {estimate})"
    elif denial.limit == "concurrency":
        detail = f" ({denial.used} in flight)"
    if denial.reset_at is None:
        retry_after, reset_at = 1, None
    else:
        retry_after = max(1, math.ceil(denial.reset_at - denial.now))
        reset_at = datetime.fromtimestamp(denial.reset_at, tz=UTC)
    return rejections.over_limit(
        prefix=key.prefix,
        limit_id=denial.limit,
        description=LIMIT_DESCRIPTIONS[denial.limit],
        size=size,
        reset_at=reset_at,
        retry_after=retry_after,
        detail=detail,
    )


def rate_headers(limits: Limits, grant: Grant) -> dict[str, str]:
    counts = grant.counts
    minute_reset = f"{max(1, math.ceil((grant.minute + 1) * MINUTE - counts.now))}s"
    headers: dict[str, str] = {}
    if limits.rpm:
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - counts.rpm))
        headers["x-ratelimit-reset-requests"] = minute_reset
    if limits.rpd:
        headers["x-ratelimit-limit-requests-day"] = str(limits.rpd)
        headers["x-ratelimit-remaining-requests-day"] = str(max(0, limits.rpd - counts.rpd))
    if limits.tpm:
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - counts.tpm))
        headers["x-ratelimit-reset-tokens"] = minute_reset
    if limits.tpd:
        headers["x-ratelimit-limit-tokens-day"] = str(limits.tpd)
        headers["x-ratelimit-remaining-tokens-day"] = str(max(0, limits.tpd - counts.tpd))
    if limits.concurrency:
        headers["x-ratelimit-limit-concurrent"] = str(limits.concurrency)
        headers["x-ratelimit-remaining-concurrent"] = str(max(0, limits.concurrency - counts.concurrency))
    return headers
