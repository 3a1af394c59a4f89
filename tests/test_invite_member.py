"""``invite_member`` and the admin's action on users: a one-time sign-in link that works, shown once."""

from __future__ import annotations

import re
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import Invitation

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^\s<'\"]+/me/welcome/gpi_[A-Za-z0-9_-]+/")
NEW_PASSWORD = "a-long-fresh-passphrase-42"


def invite_member(*args: str) -> tuple[str, str]:
    """The command's last line of output, and what it said on stderr."""
    out, err = StringIO(), StringIO()
    call_command("invite_member", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1], err.getvalue()


def follow(client, link: str):
    path = urlsplit(link).path
    assert client.get(path).status_code == 200
    return client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})


def test_it_creates_a_member_without_a_password_and_prints_a_working_link_last(client, settings):
    settings.PUBLIC_BASE_URL = "https://gemini.example.com"
    link, said = invite_member("lena", "--email", "lena@example.com")

    assert LINK.fullmatch(link) and link.startswith("https://gemini.example.com/me/welcome/")
    lena = get_user_model().objects.get(username="lena")
    assert lena.email == "lena@example.com" and not lena.has_usable_password()
    assert "Created lena, without a password" in said and "shown only once" in said

    response = follow(client, link)
    assert response.status_code == 302 and response["Location"] == "/me/"
    assert client.get("/me/").context["user"].get_username() == "lena"


def test_without_a_public_base_url_it_says_which_origin_the_link_assumes(settings):
    settings.PUBLIC_BASE_URL = ""
    link, said = invite_member("lena")
    assert link.startswith("http://127.0.0.1:8000/me/welcome/gpi_")
    assert "PUBLIC_BASE_URL is not set" in said


def test_base_url_chooses_the_origin(settings):
    settings.PUBLIC_BASE_URL = ""
    link, _ = invite_member("lena", "--base-url", "https://gw.example.org:8443/")
    assert link.startswith("https://gw.example.org:8443/me/welcome/gpi_")


def test_an_existing_member_keeps_their_password_until_they_use_the_link(client, member):
    link, said = invite_member("ada", "--email", "ada@new.example.com")
    member.refresh_from_db()
    assert member.check_password("pw-ada-123") and member.email == "ada@new.example.com"
    assert "Created" not in said
    assert follow(client, link).status_code == 302
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)


def test_inviting_again_makes_the_earlier_link_stop_working(client):
    first, _ = invite_member("lena")
    second, _ = invite_member("lena")
    assert first != second
    assert client.get(urlsplit(first).path).status_code == 410
    assert follow(client, second).status_code == 302


def test_it_refuses_a_disabled_member(django_user_model):
    django_user_model.objects.create_user(username="gone", is_active=False)
    with pytest.raises(CommandError, match="gone is disabled"):
        invite_member("gone")
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["bad\x00name"], "username"),
        (["two words"], "username"),
        (["x" * 151], "username"),
        (["lena", "--email", "not-an-address"], "email"),
        (["lena", "--base-url", "javascript:alert(1)"], "--base-url"),
    ],
)
def test_it_refuses_bad_input_without_creating_anything(args, problem):
    with pytest.raises(CommandError, match=re.escape(problem)):
        invite_member(*args)
    assert not get_user_model().objects.exists() and not Invitation.objects.exists()


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def run_action(admin_client, *users):
    return admin_client.post(
        "/admin/auth/user/",
        {"action": "make_sign_in_link", "_selected_action": [user.pk for user in users]},
        follow=True,
    )


def test_the_admin_action_shows_a_working_link_once_for_each_selected_member(admin_client, member, other_member):
    page = run_action(admin_client, member, other_member).content.decode()
    links = LINK.findall(page)

    assert len(links) == 2 and all(link.startswith("http://testserver/me/welcome/") for link in links)
    assert "One-time sign-in link for ada" in page and "shown only once" in page
    assert not LINK.findall(admin_client.get("/admin/auth/user/").content.decode())

    admin_client.logout()
    assert follow(admin_client, links[0]).status_code == 302
    assert admin_client.get("/me/").context["user"].get_username() == "ada"


def test_the_admin_action_prefers_the_public_base_url(admin_client, member, settings):
    settings.PUBLIC_BASE_URL = "https://gemini.example.com"
    page = run_action(admin_client, member).content.decode()
    assert LINK.findall(page)[0].startswith("https://gemini.example.com/me/welcome/")


def test_the_admin_action_makes_no_link_for_a_disabled_member(admin_client, member):
    member.is_active = False
    member.save()
    page = run_action(admin_client, member).content.decode()
    assert "No link made for ada: the account is disabled" in page and not LINK.findall(page)
