"""Limits hold exactly under concurrency, in the embedded and the Redis counters."""

from __future__ import annotations

import asyncio

import pytest

from accounts.counters.in_redis import RedisCounters
from accounts.limits import Admission, Rejection, admit
from accounts.policy import Limits

pytestmark = pytest.mark.django_db(transaction=True)


async def admit_many(key, n: int, body: bytes = b"{}") -> tuple[list[Admission], list[Rejection]]:
    async def one():
        try:
            return await admit(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=body)
        except Rejection as rejection:
            return rejection

    results = await asyncio.gather(*(one() for _ in range(n)))
    return [r for r in results if isinstance(r, Admission)], [r for r in results if isinstance(r, Rejection)]


async def test_fifty_simultaneous_calls_against_ten_per_minute_let_exactly_ten_through(counter_backend, amake_key):
    key, _ = await amake_key(rpm=10)
    admitted, refused = await admit_many(key, 50)
    assert len(admitted) == 10 and len(refused) == 40
    assert {r.http_status for r in refused} == {429}
    assert all("requests per minute, limit 10" in r.message for r in refused)


async def test_fifty_simultaneous_calls_against_five_at_a_time_let_exactly_five_through(counter_backend, amake_key):
    key, _ = await amake_key(concurrency=5)
    admitted, refused = await admit_many(key, 50)
    assert len(admitted) == 5
    assert all("concurrent requests, limit 5" in r.message for r in refused)
    for admission in admitted:
        await admission.settle(0)


async def test_simultaneous_token_reservations_never_exceed_tokens_per_minute(counter_backend, amake_key):
    key, _ = await amake_key(tpm=1000)
    admitted, refused = await admit_many(key, 50, body=b"x" * 400)  # about 100 tokens each
    assert len(admitted) == 10
    assert all("tokens per minute" in r.message for r in refused)


async def test_the_tightest_of_several_limits_decides(counter_backend, amake_key):
    key, _ = await amake_key(rpm=30, rpd=7, concurrency=20)
    admitted, refused = await admit_many(key, 50)
    assert len(admitted) == 7
    assert all("requests per day, limit 7" in r.message for r in refused)
    for admission in admitted:
        await admission.settle(0)


async def test_two_gateway_processes_sharing_redis_share_one_limit(redis_url, redis_prefix, amake_key):
    """Two independent Redis connections stand for two gateway processes."""
    key, _ = await amake_key()
    limits = Limits(rpm=10)
    first, second = (RedisCounters(redis_url, prefix=redis_prefix) for _ in range(2))
    results = await asyncio.gather(*(c.acquire(key.pk, limits, 0) for _ in range(25) for c in (first, second)))
    assert sum(1 for r in results if hasattr(r, "lease_id")) == 10
    await first.aclose()
    await second.aclose()
