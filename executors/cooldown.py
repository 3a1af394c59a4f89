"""How long an account stays out for a model after the upstream's 429: what the upstream said, bounded.

Google's free tier answers 429 with a ``RetryInfo`` detail (``"retryDelay":
"36s"``, sometimes fractional) whose whole seconds its message makes exact
("... Please retry in 36.2s."), which is believed only within the second
RetryInfo gives, so that the account is not asked again too early;
other upstreams and proxies send
``Retry-After`` (seconds or an HTTP date). The answer comes from an executor,
so nothing in it is trusted: only the first ``READ_LIMIT`` bytes are parsed,
the delay must be a plain duration, and a delay outside ``MIN_DELAY`` ..
``MAX_DELAY`` is not believed (below is raised to the minimum, beyond is
ignored in favour of the next source, then of ``GEMPROXY_COOLDOWN``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping

from django.utils.http import parse_http_date_safe

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
READ_LIMIT = 64 * 1024
MIN_DELAY = 1.0
MAX_DELAY = 3600.0
# Google's JSON form of a google.protobuf.Duration: seconds, up to nine fractional digits, "s".
_DURATION = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?s")
_SECONDS = re.compile(r"[0-9]{1,9}")
_RETRY_IN = re.compile(r"Please retry in ([0-9]{1,9}(?:\.[0-9]{1,12})?)s\.")
# A hostile body could hold millions of details; a real one holds three.
_MAX_DETAILS = 32


def upstream_delay(headers: Mapping[str, str], body: bytes, now: float | None = None) -> float | None:
    """Seconds the upstream asked us to wait: its RetryInfo, else its Retry-After; None if it said nothing sound."""
    delay = _from_retry_info(body)
    if delay is None:
        delay = _from_retry_after(headers, time.time() if now is None else now)
    return delay


def _bounded(seconds: float) -> float | None:
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DELAY:
        return None
    return max(MIN_DELAY, seconds)


def _from_retry_info(body: bytes) -> float | None:
    try:
        answer = json.loads(body[:READ_LIMIT])
    except (ValueError, RecursionError):
        return None  # not JSON, cut off at the limit, or nested to exhaust the parser
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]  # a stream without alt=sse answers errors as a one-element array
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("details"), list):
        return None
    details = error["details"]
    for detail in details[:_MAX_DETAILS]:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and _DURATION.fullmatch(delay):
                return _bounded(_refined(float(delay[:-1]), error.get("message")))
            return None
    return None


def _refined(seconds: float, message: object) -> float:
    """The message's exact time, if it agrees with RetryInfo's whole seconds."""
    found = _RETRY_IN.search(message) if isinstance(message, str) else None
    if found is not None and seconds <= float(found.group(1)) < seconds + 1:
        return float(found.group(1))
    return seconds


def _from_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    value = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return _bounded(float(value))
    moment = parse_http_date_safe(value) if len(value) <= 64 else None
    if moment is None:
        return None
    return _bounded(max(0.0, moment - now))
