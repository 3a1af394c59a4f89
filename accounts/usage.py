"""One usage record per call, accepted or not, written off the request path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

OUTCOMES = (
    "ok",
    "bad_request",
    "rejected_auth",
    "rejected_quota",
    "client_cancelled",
    "upstream_error",
    "executor_lost",
    "timeout",
    "unavailable",
)


@dataclass
class UsageEvent:
    outcome: str
    method: str = ""
    model: str = ""
    streamed: bool = False
    status_code: int = 0
    user_id: int | None = None
    key_id: int | None = None
    prompt_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    executor_account: str = ""
    attempts: int = 0
    latency_ms: int = 0
    ttfb_ms: int | None = None
    client_ip: str = ""
    created_at: datetime = field(default_factory=timezone.now)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens


def record(event: UsageEvent) -> None:
    """Queue the record; never blocks the caller."""
