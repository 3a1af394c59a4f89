"""A proxy key's rules (IP allow-list, expiry, revocation) hold on ``/api/v1/me/*`` as on the Gemini routes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ProxyKey
from accounts.rejections import Rejection

pytestmark = pytest.mark.django_db

ME_ROUTES = ["/api/v1/me/keys", "/api/v1/me/usage"]


@pytest.mark.parametrize("route", ME_ROUTES)
def test_a_key_limited_to_a_network_is_refused_from_outside_it(client, make_key, route):
    _, secret = make_key(ip_allowlist="10.0.0.0/8")

    response = client.get(route, HTTP_X_GOOG_API_KEY=secret, REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 403
    assert "127.0.0.1" in response.json()["detail"] and "allow-list" in response.json()["detail"]


@pytest.mark.parametrize("route", ME_ROUTES)
def test_a_key_limited_to_a_network_works_from_inside_it(client, make_key, route):
    _, secret = make_key(ip_allowlist="10.0.0.0/8")

    assert client.get(route, HTTP_X_GOOG_API_KEY=secret, REMOTE_ADDR="10.20.30.40").status_code == 200


def test_the_members_default_network_holds_for_a_key_without_its_own(client, make_key, member):
    from accounts.models import DefaultLimits

    DefaultLimits.objects.create(user=member, ip_allowlist="192.168.0.0/16")
    _, secret = make_key()

    assert client.get("/api/v1/me/keys", HTTP_X_GOOG_API_KEY=secret, REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.parametrize("route", ME_ROUTES)
def test_an_expired_key_is_refused(client, make_key, route):
    _, secret = make_key(expires_at=timezone.now() - timedelta(minutes=1))

    response = client.get(route, HTTP_X_GOOG_API_KEY=secret)

    assert response.status_code == 401 and "expired" in response.json()["detail"]


@pytest.mark.parametrize("route", ME_ROUTES)
def test_a_revoked_key_is_refused(client, make_key, route):
    key, secret = make_key()
    key.revoke()

    assert client.get(route, HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


@pytest.mark.parametrize("secret", ["gpk_\x00abc", "gpk_abc\x00", "\x00", "gpk_\u00e9\u202e", "x" * 10_000])
def test_a_secret_no_key_could_have_is_refused_without_a_lookup(secret, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(Rejection) as refused:
        ProxyKey.objects.authenticate(secret)

    assert refused.value.http_status == 400


@pytest.mark.django_db(databases=["default", "postgresql"])
def test_a_key_with_a_nul_is_an_invalid_key_on_postgresql_not_a_server_error(client, on_postgresql):
    response = client.get("/api/v1/me/keys?key=gpk_%00abcdefgh")

    assert response.status_code == 401
    assert "API key not valid" in response.json()["detail"]
