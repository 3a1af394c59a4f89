"""Token limits reserve an estimate before the call and settle to the real use after it."""

from __future__ import annotations

import pytest

from accounts.counters import get_counters
from accounts.limits import Rejection, admit, estimate_tokens

pytestmark = pytest.mark.django_db(transaction=True)

BODY_OF_100_TOKENS = b"x" * 400


async def call(key, model: str = "gemini-2.5-flash", body: bytes = BODY_OF_100_TOKENS):
    return await admit(key, model=model, client_ip="10.0.0.1", request_body=body)


def test_the_estimate_is_about_four_bytes_per_token_and_capped(settings):
    settings.GEMPROXY_TOKEN_ESTIMATE_MAX = 1000
    assert estimate_tokens(b"") == 1
    assert estimate_tokens(BODY_OF_100_TOKENS) == 100
    assert estimate_tokens(b"x" * 1_000_000) == 1000


async def test_the_reservation_is_replaced_by_the_real_use(counter_backend, amake_key):
    key, _ = await amake_key(tpm=1000, tpd=5000)
    admission = await call(key)
    reserved = await get_counters().peek(key.pk)
    assert (reserved.tpm, reserved.tpd) == (100, 100)
    assert admission.headers["x-ratelimit-remaining-tokens"] == "900"
    await admission.settle(30)
    settled = await get_counters().peek(key.pk)
    assert (settled.tpm, settled.tpd) == (30, 30)


async def test_use_beyond_the_estimate_counts_in_full(counter_backend, amake_key):
    key, _ = await amake_key(tpm=1000)
    await (await call(key)).settle(950)
    with pytest.raises(Rejection) as refused:
        await call(key)
    assert "tokens per minute, limit 1000 (950 used, this request reserves about 100)" in refused.value.message
    assert refused.value.http_status == 429 and refused.value.retry_after <= 60


async def test_tokens_per_day_refuses_once_the_day_is_used_up(counter_backend, amake_key):
    key, _ = await amake_key(tpd=500)
    await (await call(key)).settle(450)
    with pytest.raises(Rejection, match="tokens per day, limit 500"):
        await call(key)


async def test_a_stream_cut_short_counts_what_it_used_until_then(counter_backend, amake_key):
    key, _ = await amake_key(tpm=1000)
    admission = await call(key)
    await admission.settle(37)  # what the usageMetadata seen before the disconnect said
    assert (await get_counters().peek(key.pk)).tpm == 37


async def test_calls_without_a_model_reserve_no_tokens_and_are_not_refused_by_token_limits(counter_backend, amake_key):
    key, _ = await amake_key(tpm=100)
    await (await call(key)).settle(100)
    listing = await call(key, model="", body=b"")
    await listing.settle(0)
    assert (await get_counters().peek(key.pk)).tpm == 100
