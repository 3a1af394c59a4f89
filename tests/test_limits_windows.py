"""Request windows, what a refusal says, and the rate-limit headers of a success."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from accounts.counters import get_counters
from accounts.limits import Rejection, admit

pytestmark = pytest.mark.django_db(transaction=True)


async def call(key):
    return await admit(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=b"{}")


async def test_a_refusal_names_the_limit_its_size_and_when_it_resets(counter_backend, amake_key):
    key, _ = await amake_key(rpm=2)
    await call(key)
    await call(key)
    with pytest.raises(Rejection) as refused:
        await call(key)
    rejection = refused.value
    assert (rejection.http_status, rejection.status, rejection.reason) == (429, "RESOURCE_EXHAUSTED", "rejected_quota")
    assert f"API key {key.prefix}…: requests per minute, limit 2. It resets at " in rejection.message
    assert 1 <= rejection.retry_after <= 60
    retry_info = rejection.details[-1]
    assert retry_info == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{rejection.retry_after}s",
    }
    assert rejection.details[0]["violations"][0] == {"quotaMetric": "gemproxy/rpm", "quotaId": "rpm", "quotaValue": "2"}


async def test_requests_per_day_reset_at_utc_midnight(counter_backend, amake_key):
    key, _ = await amake_key(rpd=1)
    await call(key)
    with pytest.raises(Rejection) as refused:
        await call(key)
    now = datetime.now(UTC)
    seconds_to_midnight = 86400 - (now.hour * 3600 + now.minute * 60 + now.second)
    assert "requests per day, limit 1. It resets at " in refused.value.message
    assert " 00:00:00 UTC" in refused.value.message
    assert abs(refused.value.retry_after - seconds_to_midnight) <= 2


async def test_a_success_carries_rate_limit_headers_for_each_limit(counter_backend, amake_key):
    key, _ = await amake_key(rpm=10, rpd=100, tpm=1000, tpd=10_000, concurrency=3)
    admission = await admit(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=b"x" * 400)
    headers = admission.headers
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-limit-requests-day"] == "100"
    assert headers["x-ratelimit-remaining-requests-day"] == "99"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "900"
    assert headers["x-ratelimit-remaining-tokens-day"] == "9900"
    assert headers["x-ratelimit-remaining-concurrent"] == "2"
    assert 1 <= int(headers["x-ratelimit-reset-requests"].removesuffix("s")) <= 60
    await admission.settle(0)


async def test_a_key_without_limits_counts_nothing_and_sends_no_headers(counter_backend, amake_key):
    key, _ = await amake_key()
    admission = await call(key)
    assert admission.headers == {}
    await admission.settle(10)
    assert (await get_counters().peek(key.pk)).rpm == 0


async def test_a_new_minute_starts_a_new_window(amake_key, settings, monkeypatch):
    settings.GEMPROXY_COUNTERS = "accounts.counters.in_process.InProcessCounters"
    key, _ = await amake_key(rpm=1)
    clock = [math.floor(datetime.now(UTC).timestamp() / 60) * 60 + 10.0]
    monkeypatch.setattr("accounts.counters.in_process.time.time", lambda: clock[0])
    await call(key)
    with pytest.raises(Rejection):
        await call(key)
    clock[0] += 60
    await call(key)
