"""One-time sign-in links: following one lets a member choose a password and signs them in, once."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.invitations import invite
from accounts.models import Invitation

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-fresh-passphrase-42"


@pytest.fixture
def newcomer(django_user_model):
    user = django_user_model(username="noor")
    user.set_unusable_password()
    user.save()
    return user


def path_of(link) -> str:
    return urlsplit(link.url).path


def choose_password(client, path: str, password: str = NEW_PASSWORD, repeat: str | None = None):
    return client.post(path, {"new_password1": password, "new_password2": password if repeat is None else repeat})


def signed_in_as(client) -> str | None:
    response = client.get("/me/")
    return response.context["user"].get_username() if response.status_code == 200 else None


def test_the_link_is_the_origin_then_me_welcome_then_the_secret(newcomer):
    link = invite(newcomer, "https://gemini.example.com/")
    assert link.url.startswith("https://gemini.example.com/me/welcome/gpi_") and link.url.endswith("/")


def test_following_the_link_lets_the_member_choose_a_password_and_lands_them_on_their_page(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))

    page = client.get(path)
    assert page.status_code == 200 and "Hello, noor" in page.content.decode()
    response = choose_password(client, path)

    assert response.status_code == 302 and response["Location"] == "/me/"
    assert signed_in_as(client) == "noor"
    newcomer.refresh_from_db()
    assert newcomer.check_password(NEW_PASSWORD)


def test_the_password_then_works_on_the_login_page(client, newcomer):
    choose_password(client, path_of(invite(newcomer, "http://testserver")))
    client.logout()
    response = client.post("/me/login/", {"username": "noor", "password": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/me/"


def test_opening_the_link_uses_nothing_up(client, newcomer):
    # Chat tools fetch links to preview them: only choosing a password counts.
    path = path_of(invite(newcomer, "http://testserver"))
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert choose_password(client, path).status_code == 302


def test_a_used_link_says_so_and_points_to_the_login_page(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))
    choose_password(client, path)
    client.logout()

    for response in (client.get(path), choose_password(client, path, "another-passphrase-77")):
        page = response.content.decode()
        assert response.status_code == 410
        assert "already been used" in page and 'href="/me/login/"' in page
    newcomer.refresh_from_db()
    assert newcomer.check_password(NEW_PASSWORD) and signed_in_as(client) is None


def test_an_expired_link_says_so(client, newcomer, settings):
    settings.GEMPROXY_INVITE_SECONDS = 60
    link = invite(newcomer, "http://testserver")
    assert abs(link.expires_at - (timezone.now() + timedelta(seconds=60))) < timedelta(seconds=5)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = choose_password(client, path_of(link))
    assert response.status_code == 410 and "has expired" in response.content.decode()
    assert client.get(path_of(link)).status_code == 410
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()


def test_the_default_lifetime_is_a_week(newcomer):
    link = invite(newcomer, "http://testserver")
    assert abs(link.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(seconds=5)


def test_a_newer_link_invalidates_the_older_one(client, newcomer):
    older = path_of(invite(newcomer, "http://testserver"))
    newer = path_of(invite(newcomer, "http://testserver"))

    response = choose_password(client, older)
    assert response.status_code == 410 and "replaced by a newer one" in response.content.decode()
    assert choose_password(client, newer).status_code == 302


def test_a_link_opened_before_a_newer_one_was_made_no_longer_works(client, newcomer):
    older = path_of(invite(newcomer, "http://testserver"))
    assert client.get(older).status_code == 200
    invite(newcomer, "http://testserver")
    assert choose_password(client, older).status_code == 410
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()


def test_the_projects_password_rules_apply_and_a_refused_password_does_not_use_the_link(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))

    short = choose_password(client, path, "abc")
    common = choose_password(client, path, "password123")
    mismatch = choose_password(client, path, NEW_PASSWORD, repeat=NEW_PASSWORD + "x")

    assert short.status_code == common.status_code == mismatch.status_code == 200
    assert "too short" in short.content.decode() and "too common" in common.content.decode()
    assert "didn’t match" in mismatch.content.decode()
    assert choose_password(client, path).status_code == 302


def test_a_disabled_member_cannot_use_their_link(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))
    get_user_model().objects.filter(pk=newcomer.pk).update(is_active=False)
    response = choose_password(client, path)
    assert response.status_code == 403 and "disabled" in response.content.decode()


def test_the_secret_is_stored_only_as_a_prefix_and_a_keyed_hash(newcomer):
    secret = path_of(invite(newcomer, "http://testserver")).split("/")[3]
    row = Invitation.objects.values().get()
    assert secret not in str(row) and row["prefix"] == secret[:12] and len(row["digest"]) == 64


def test_a_link_with_a_changed_character_is_not_valid(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))
    last = path[-2]
    forged = f"{path[:-2]}{'A' if last != 'A' else 'B'}/"
    response = client.get(forged)
    assert response.status_code == 404 and "not valid" in response.content.decode()


@pytest.mark.parametrize(
    "token",
    ["gpi_%00abc", "gpi_" + "a" * 10_000, "gpi_%C3%A9t%C3%A9", "%FF%FE", "\u00e9", "a/b", "", "gpi_abc", "gpi_x/y/"],
)
def test_hostile_tokens_get_a_clear_not_found(client, newcomer, token):
    invite(newcomer, "http://testserver")
    for response in (client.get(f"/me/welcome/{token}/"), client.post(f"/me/welcome/{token}", {"new_password1": "x"})):
        assert response.status_code == 404
        assert "This sign-in link is not valid" in response.content.decode()


def test_the_page_tells_browsers_to_keep_the_address_to_themselves(client, newcomer):
    response = client.get(path_of(invite(newcomer, "http://testserver")))
    assert response["Referrer-Policy"] == "same-origin" and "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("secret", ["gpi_\x00abc", "\x00", "gpi_\u00e9\u202e", "gpi_" + "x" * 10_000, "gpi_a/b"])
def test_a_secret_no_link_could_have_is_refused_without_a_lookup(secret, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert Invitation.objects.find(secret) is None


@pytest.mark.django_db(databases=["default", "postgresql"])
def test_a_link_with_a_nul_is_not_found_on_postgresql_not_a_server_error(client, on_postgresql):
    response = client.get("/me/welcome/gpi_%00abcdefgh/")
    assert response.status_code == 404 and "This sign-in link is not valid" in response.content.decode()


def test_other_methods_are_refused_and_use_nothing_up(client, newcomer):
    path = path_of(invite(newcomer, "http://testserver"))
    assert client.put(path, {"new_password1": NEW_PASSWORD}).status_code == 405
    assert choose_password(client, path).status_code == 302
