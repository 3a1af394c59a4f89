"""Wrong passwords on the admin's and the members' sign-in pages are throttled per username and address."""

from __future__ import annotations

import pytest

from accounts.models import SignInFailures

pytestmark = pytest.mark.django_db

LIMIT = 5
REFUSED = "Too many failed sign-ins for this username from your address"
WRONG = "correct username and password"  # Django's words for a wrong password, on both pages


@pytest.fixture(autouse=True)
def small_limit(settings) -> None:
    settings.GEMPROXY_SIGNIN_FAILURE_LIMIT = LIMIT
    settings.GEMPROXY_SIGNIN_LOCKOUT_SECONDS = 600


@pytest.fixture(params=["/me/login/", "/admin/login/"])
def sign_in(request, client, admin_user):
    """``sign_in(password, username="root", ip=...)`` on one of the two pages -> the response."""

    def attempt(password: str, username: str = "root", ip: str = "192.0.2.1"):
        return client.post(request.param, {"username": username, "password": password}, REMOTE_ADDR=ip)

    return attempt


def signed_in(response) -> bool:
    return response.status_code == 302


def test_thirty_wrong_passwords_in_a_row_are_not_all_answered(sign_in):
    pages = [sign_in("guess-{n}").content.decode() for n in range(30)]

    assert sum(WRONG in page for page in pages) == LIMIT
    assert all(REFUSED in page and "Try again in 10 minutes" in page for page in pages[LIMIT:])


def test_once_locked_out_even_the_right_password_is_refused(sign_in):
    for n in range(LIMIT):
        sign_in(f"guess-{n}")

    response = sign_in("pw-root-123")

    assert not signed_in(response) and REFUSED in response.content.decode()


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(sign_in):
    for n in range(LIMIT - 1):
        sign_in(f"guess-{n}")

    assert signed_in(sign_in("pw-root-123"))


def test_a_successful_sign_in_resets_the_count(sign_in, client):
    for n in range(LIMIT - 1):
        sign_in(f"guess-{n}")
    assert signed_in(sign_in("pw-root-123"))
    client.logout()

    for n in range(LIMIT - 1):
        sign_in(f"again-{n}")

    assert signed_in(sign_in("pw-root-123"))


def test_the_lockout_is_for_that_username_from_that_address(sign_in, member):
    for n in range(LIMIT):
        sign_in(f"guess-{n}")

    assert WRONG in sign_in("guess", username="ada").content.decode()
    assert signed_in(sign_in("pw-root-123", ip="198.51.100.7"))


def test_the_lockout_ends_when_its_time_is_up(sign_in):
    from datetime import timedelta

    from django.utils import timezone

    for n in range(LIMIT):
        sign_in(f"guess-{n}")
    SignInFailures.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert signed_in(sign_in("pw-root-123"))


def test_neither_the_username_nor_the_address_is_stored(sign_in):
    sign_in("guess", username="root<script>")

    [key] = SignInFailures.objects.values_list("key", flat=True)
    assert len(key) == 64 and "root" not in key and "192.0.2.1" not in key


def test_a_username_with_a_nul_is_refused_by_the_form_not_the_database(sign_in):
    response = sign_in("guess", username="root\x00")

    assert response.status_code == 200 and "Null characters are not allowed" in response.content.decode()


@pytest.mark.django_db(databases=["default", "postgresql"])
def test_the_count_is_shared_through_the_database_on_postgresql(on_postgresql, client, django_user_model):
    django_user_model.objects.create_superuser(username="root", password="pw-root-123")
    for n in range(LIMIT):
        client.post("/admin/login/", {"username": "root", "password": f"guess-{n}"})

    response = client.post("/me/login/", {"username": "root", "password": "pw-root-123"})

    assert REFUSED in response.content.decode()
    assert SignInFailures.objects.get().failures == LIMIT
