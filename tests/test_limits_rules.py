"""Rules checked at admission: expiry, allowed models, IP allow-list; and a Redis outage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.limits import Rejection, admit

pytestmark = pytest.mark.django_db(transaction=True)


async def call(key, model: str = "gemini-2.5-flash", client_ip: str = "10.1.2.3"):
    return await admit(key, model=model, client_ip=client_ip, request_body=b"{}")


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "models/gemini-2.5-pro", "gemini-2.0-flash", ""])
async def test_allowed_models_match_by_glob_with_or_without_the_models_prefix(amake_key, model):
    key, _ = await amake_key(allowed_models="gemini-2.5-*, gemini-2.0-flash")
    await call(key, model=model)


async def test_a_model_outside_the_patterns_is_refused_naming_model_and_patterns(amake_key):
    key, _ = await amake_key(allowed_models="gemini-2.5-*")
    with pytest.raises(Rejection) as refused:
        await call(key, model="models/gemini-3-pro-preview")
    rejection = refused.value
    assert (rejection.http_status, rejection.status, rejection.reason) == (403, "PERMISSION_DENIED", "rejected_auth")
    assert "may not use model models/gemini-3-pro-preview. Allowed models: gemini-2.5-*." in rejection.message


async def test_a_star_on_the_key_lifts_its_members_model_restriction(amake_key, member):
    from asgiref.sync import sync_to_async

    from accounts.models import DefaultLimits

    await sync_to_async(DefaultLimits.objects.create)(user=member, allowed_models="gemini-2.5-flash")
    restricted, _ = await amake_key()
    free, _ = await amake_key(allowed_models="*")
    with pytest.raises(Rejection):
        await call(restricted, model="gemini-2.5-pro")
    await call(free, model="gemini-2.5-pro")


@pytest.mark.parametrize("client_ip", ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1"])
async def test_addresses_inside_the_allow_list_pass(amake_key, client_ip):
    key, _ = await amake_key(ip_allowlist="10.0.0.0/8, 2001:db8::/32")
    await call(key, client_ip=client_ip)


@pytest.mark.parametrize("client_ip", ["192.168.1.1", "2001:db9::1", "", "not-an-ip"])
async def test_addresses_outside_the_allow_list_are_refused_saying_why(amake_key, client_ip):
    key, _ = await amake_key(ip_allowlist="10.0.0.0/8, 2001:db8::/32")
    with pytest.raises(Rejection) as refused:
        await call(key, client_ip=client_ip)
    assert (refused.value.http_status, refused.value.status) == (403, "PERMISSION_DENIED")
    assert "may not be used from IP address" in refused.value.message


async def test_a_key_that_expired_while_cached_by_the_gateway_is_refused(amake_key):
    key, _ = await amake_key(expires_at=timezone.now() + timedelta(milliseconds=1))
    key.expires_at = timezone.now() - timedelta(seconds=1)
    with pytest.raises(Rejection, match="API key expired"):
        await call(key)


async def test_an_unreachable_redis_refuses_with_503_rather_than_letting_calls_through_uncounted(amake_key, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1"
    settings.GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
    key, _ = await amake_key(rpm=10)
    with pytest.raises(Rejection) as refused:
        await call(key)
    assert (refused.value.http_status, refused.value.status, refused.value.reason) == (
        503,
        "UNAVAILABLE",
        "unavailable",
    )
