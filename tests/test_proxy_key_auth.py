"""Authenticating a proxy key: current secret, rotation grace, expiry, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import DefaultLimits, ProxyKey
from accounts.rejections import INVALID_KEY_MESSAGE, Rejection

pytestmark = pytest.mark.django_db


def rejection_for(secret: str) -> Rejection:
    with pytest.raises(Rejection) as caught:
        ProxyKey.objects.authenticate(secret)
    return caught.value


def test_it_finds_the_key_of_a_valid_secret_with_its_user(make_key, django_assert_num_queries):
    key, secret = make_key(name="laptop")
    with django_assert_num_queries(1):
        found = ProxyKey.objects.authenticate(secret)
        assert found.user.username == "ada"
        assert found.member_defaults is None
    assert found.pk == key.pk


@pytest.mark.parametrize("secret", ["", "gpk_nonsense", "x" * 60])
def test_it_rejects_an_unknown_secret_as_google_does(secret):
    rejection = rejection_for(secret)
    assert (rejection.http_status, rejection.status, rejection.reason) == (400, "INVALID_ARGUMENT", "rejected_auth")
    assert rejection.message == INVALID_KEY_MESSAGE
    assert rejection.details[0]["reason"] == "API_KEY_INVALID"


def test_it_rejects_a_secret_that_shares_the_prefix_but_not_the_digest(make_key):
    _, secret = make_key()
    assert rejection_for(secret[:-1] + ("A" if secret[-1] != "A" else "B")).message == INVALID_KEY_MESSAGE


def test_a_revoked_key_is_refused_saying_it_was_revoked(make_key):
    key, secret = make_key()
    key.revoke()
    rejection = rejection_for(secret)
    assert (rejection.http_status, rejection.status) == (403, "PERMISSION_DENIED")
    assert "was revoked at" in rejection.message and key.prefix in rejection.message


def test_an_expired_key_is_refused_saying_when_it_expired(make_key):
    expired_at = timezone.now() - timedelta(minutes=1)
    _, secret = make_key(expires_at=expired_at)
    rejection = rejection_for(secret)
    assert (rejection.http_status, rejection.status) == (400, "INVALID_ARGUMENT")
    assert rejection.message.startswith("API key expired.")
    assert expired_at.strftime("%Y-%m-%d %H:%M:%S UTC") in rejection.message


def test_a_key_that_expires_later_works(make_key):
    _, secret = make_key(expires_at=timezone.now() + timedelta(days=1))
    assert ProxyKey.objects.authenticate(secret)


def test_a_key_of_a_disabled_member_is_refused(make_key, member):
    _, secret = make_key()
    member.is_active = False
    member.save()
    assert rejection_for(secret).status == "PERMISSION_DENIED"


def test_after_rotation_both_secrets_work_during_the_grace_period(make_key):
    key, old_secret = make_key()
    new_secret = key.rotate(grace=timedelta(hours=1))
    assert new_secret != old_secret
    assert ProxyKey.objects.authenticate(old_secret).pk == key.pk
    assert ProxyKey.objects.authenticate(new_secret).pk == key.pk
    assert key.status == "rotating"


def test_after_the_grace_period_only_the_new_secret_works(make_key):
    key, old_secret = make_key()
    new_secret = key.rotate(grace=timedelta(hours=1))
    ProxyKey.objects.filter(pk=key.pk).update(previous_valid_until=timezone.now() - timedelta(seconds=1))
    assert rejection_for(old_secret).message == INVALID_KEY_MESSAGE
    assert ProxyKey.objects.authenticate(new_secret).pk == key.pk


def test_rotation_grace_defaults_to_the_setting(make_key, settings):
    settings.GEMPROXY_ROTATION_GRACE_SECONDS = 0
    key, old_secret = make_key()
    key.rotate()
    assert rejection_for(old_secret).message == INVALID_KEY_MESSAGE


def test_a_second_rotation_ends_the_first_secrets_grace(make_key):
    key, first = make_key()
    second = key.rotate(grace=timedelta(hours=1))
    third = key.rotate(grace=timedelta(hours=1))
    assert rejection_for(first).message == INVALID_KEY_MESSAGE
    assert ProxyKey.objects.authenticate(second).pk == ProxyKey.objects.authenticate(third).pk == key.pk


def test_a_key_inherits_its_members_defaults_and_may_override_them(make_key, member):
    DefaultLimits.objects.create(user=member, rpm=10, tpd=1000, allowed_models="gemini-2.5-*")
    _, secret = make_key(rpm=0, tpm=500)
    policy = ProxyKey.objects.authenticate(secret).policy
    assert (policy.limits.rpm, policy.limits.tpm, policy.limits.tpd) == (0, 500, 1000)
    assert policy.model_patterns == ("gemini-2.5-*",)
