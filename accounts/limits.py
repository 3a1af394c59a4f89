"""Admission of a call against its key's limits.

The gateway calls ``admit`` once per call, after authentication, and
``Admission.settle`` exactly once at the end (in ``finally``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import ProxyKey


class Rejection(Exception):
    """A call refused before it reaches an executor, in the words Google would use."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 429,
        status: str = "RESOURCE_EXHAUSTED",
        reason: str = "rejected_quota",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.status = status
        self.reason = reason  # the usage record's outcome
        self.retry_after = retry_after


@dataclass
class Admission:
    key: ProxyKey
    headers: dict[str, str] = field(default_factory=dict)

    async def settle(self, tokens_used: int) -> None:
        """Replace the reservation by what the call really used; safe to call twice."""


async def admit(key: ProxyKey, *, model: str, client_ip: str, request_body: bytes) -> Admission:
    return Admission(key=key)
