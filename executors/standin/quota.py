"""The free tier's per-key, per-model request quota, as Google enforces it on generateContent.

``FakeUpstream(quotas={"key-a": 2}, quota_window=60)`` lets the upstream key
``key-a`` make 2 generate calls (unary or streamed) per model per window; the
next is refused with Google's free-tier 429 until the window is over, with a
``retryDelay`` of the time left. Keys not named have no quota. A window
starts at the first call served in it; refused calls do not count, as with
Google.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from executors.standin.errors import free_tier_quota_error


@dataclass
class _Window:
    started: float
    served: int = 0


@dataclass
class FreeTierQuota:
    calls: dict[str, int]  # upstream key -> calls per window and model
    window: float = 60.0
    _windows: dict[tuple[str, str], _Window] = field(default_factory=dict)

    def charge(self, key: str | None, model_id: str) -> None:
        """Count one call of ``key`` on ``model_id``, or raise Google's 429 when its quota is spent."""
        limit = self.calls.get(key or "")
        if limit is None:
            return
        now = time.monotonic()
        window = self._windows.get((key or "", model_id))
        if window is None or now - window.started >= self.window:
            window = self._windows[(key or "", model_id)] = _Window(started=now)
        if window.served >= limit:
            raise free_tier_quota_error(model_id, limit, window.started + self.window - now)
        window.served += 1
