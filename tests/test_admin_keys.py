"""The admin's console for members and keys: secrets shown once, revoke, rotate, limits."""

from __future__ import annotations

import re

import pytest

from accounts.models import DefaultLimits, ProxyKey
from accounts.rejections import Rejection

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"gpk_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_key_list_shows_masked_keys_status_and_limits_in_force(admin_client, make_key, member):
    DefaultLimits.objects.create(user=member, rpm=60)
    active, secret = make_key(name="laptop", tpm=5000, allowed_models="gemini-2.5-*")
    revoked, _ = make_key(name="old phone")
    revoked.revoke()
    page = admin_client.get("/admin/accounts/proxykey/").content.decode()
    assert active.masked in page and "laptop" in page and "old phone" in page
    assert "60 req/min · 5,000 tok/min · models gemini-2.5-*" in page
    assert "revoked" in page
    assert secret not in page


def test_creating_a_key_shows_its_secret_once(admin_client, member):
    response = admin_client.post(
        "/admin/accounts/proxykey/add/",
        {"user": member.pk, "name": "ci", "rpm": "10", "allowed_models": "", "ip_allowlist": "10.0.0.0/8"},
        follow=True,
    )
    secrets = SECRET.findall(response.content.decode())
    assert len(secrets) == 1
    key = ProxyKey.objects.authenticate(secrets[0])
    assert (key.name, key.rpm, key.ip_allowlist) == ("ci", 10, "10.0.0.0/8")
    assert not SECRET.findall(admin_client.get("/admin/accounts/proxykey/").content.decode())


def test_the_add_form_refuses_a_bad_cidr(admin_client, member):
    response = admin_client.post(
        "/admin/accounts/proxykey/add/", {"user": member.pk, "name": "x", "ip_allowlist": "10.0.0.0/33"}
    )
    assert response.status_code == 200 and "Not a list of CIDRs" in response.content.decode()
    assert not ProxyKey.objects.exists()


def test_the_revoke_action_revokes_the_selected_keys(admin_client, make_key):
    key, secret = make_key()
    admin_client.post("/admin/accounts/proxykey/", {"action": "revoke", "_selected_action": [key.pk]})
    with pytest.raises(Rejection, match="revoked"):
        ProxyKey.objects.authenticate(secret)


def test_the_rotate_action_shows_the_new_secret_and_keeps_the_old_one_for_the_grace(admin_client, make_key):
    key, old_secret = make_key()
    response = admin_client.post(
        "/admin/accounts/proxykey/", {"action": "rotate", "_selected_action": [key.pk]}, follow=True
    )
    page = response.content.decode()
    [new_secret] = SECRET.findall(page)
    assert "the old secret works until" in page
    assert ProxyKey.objects.authenticate(new_secret).pk == ProxyKey.objects.authenticate(old_secret).pk == key.pk


def test_the_key_page_shows_limits_in_force_and_what_is_used_now(admin_client, make_key, member):
    DefaultLimits.objects.create(user=member, tpd=100_000)
    key, _ = make_key(rpm=10)
    page = admin_client.get(f"/admin/accounts/proxykey/{key.pk}/change/").content.decode()
    assert "10 req/min · 100,000 tok/day" in page
    assert "0 / 10 req/min · 0 / 100,000 tok/day" in page


def test_limits_are_editable_on_the_key_page(admin_client, make_key, member):
    key, secret = make_key()
    admin_client.post(
        f"/admin/accounts/proxykey/{key.pk}/change/",
        {"user": member.pk, "name": "edited", "is_active": "on", "rpm": "5", "tpm": "", "allowed_models": "gemini-*"},
    )
    key = ProxyKey.objects.authenticate(secret)
    assert (key.name, key.rpm, key.tpm, key.allowed_models) == ("edited", 5, None, "gemini-*")


def test_the_member_page_edits_default_limits_and_lists_the_keys(admin_client, make_key, member):
    key, _ = make_key(name="laptop")
    page = admin_client.get(f"/admin/auth/user/{member.pk}/change/").content.decode()
    assert "Default limits for each of the member" in page
    assert key.masked in page and "laptop" in page
