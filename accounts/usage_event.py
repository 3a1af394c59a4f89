"""One call's usage record as the gateway sees it, before it is a row (``accounts.usage`` writes it).

Its own module because both the writer (``accounts.usage``) and the durable
queues in front of it (``accounts.usage_queue``, ``accounts.usage_journal``)
speak it, the queues as one JSON object (``encode``, ``decode``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass
class UsageEvent:
    outcome: str
    method: str = ""
    model: str = ""
    requested_model: str = ""  # the name a foreign client sent (an alias or the Gemini id); "" on native calls
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
    executor_account: str = ""  # the account whose answer the client got
    attempts: int = 0
    refused_by: str = ""  # accounts that answered 429 to this call, comma-separated, in order
    latency_ms: int = 0
    ttfb_ms: int | None = None
    client_ip: str = ""
    # What django.utils.timezone.now gives with USE_TZ (the site's setting), without reading the setting per call.
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    calls: int = 1  # more than 1 only for the rows that count calls without a valid key
    record_id: str = ""  # given by record/arecord; "" for the rows that count calls without a valid key

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens


def encode(event: UsageEvent) -> bytes:
    # orjson takes the dataclass as it is, created_at as ISO 8601: a few microseconds on the call's path.
    return orjson.dumps(event)


def decode(raw: bytes | str) -> UsageEvent:
    """The event an entry holds; ValueError (or TypeError, KeyError) if it is not one of ours."""
    entry = orjson.loads(raw)
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    values: dict[str, Any] = {name: value for name, value in entry.items() if name in _FIELDS}
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return UsageEvent(**values)


_FIELDS = frozenset(f.name for f in fields(UsageEvent))
