"""Sign-in links through a real gateway: they work once, and their secret never reaches its log."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest

from tests.e2e.harness import Deployment, Gateway
from tests.e2e.raw_http import exchange

PASSWORD = "a-long-fresh-passphrase-42"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def choose_password(gateway: Gateway, link: str) -> httpx.Response:
    """What a browser does: open the link, then post the form with its CSRF token and cookie."""
    with httpx.Client(base_url=gateway.url, timeout=10) as browser:
        form = browser.get(link)
        assert form.status_code == 200, form.text
        answer = browser.post(
            urlsplit(link).path,
            data={
                "csrfmiddlewaretoken": CSRF.search(form.text)[1],
                "new_password1": PASSWORD,
                "new_password2": PASSWORD,
            },
            headers={"Referer": link, "Origin": gateway.url},
        )
        if answer.status_code == 302:
            me = browser.get("/me/")
            assert me.status_code == 200 and "Signed in as <strong>zoe</strong>" in me.text
        return answer


def test_a_link_from_the_command_signs_in_once_and_its_secret_is_not_logged(
    deployment: Deployment, gateway: Gateway
) -> None:
    link = deployment.manage("invite_member", "zoe", "--base-url", gateway.url)
    secret = urlsplit(link).path.split("/")[3]
    assert secret.startswith("gpi_")

    first = choose_password(gateway, link)
    assert first.status_code == 302 and first.headers["location"] == "/me/"
    again = httpx.get(link, timeout=10)
    assert again.status_code == 410 and "already been used" in again.text

    log = gateway.process.log()
    assert secret not in log and secret[4:] not in log
    assert '"POST /me/welcome/REDACTED" 302' in log and '"GET /me/welcome/REDACTED" 410' in log


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    "target",
    [
        "/me/welcome/gpi_%00abc/",
        "/me/welcome/gpi_" + "a" * 10_000 + "/",
        "/me/welcome/gpi_%C3%A9t%C3%A9/",
        "/me/welcome/%FF%FE/",
        "/me/welcome/gpi_abc",
        "/me/welcome/",
    ],
)
def test_hostile_links_get_a_clear_not_found(gateway: Gateway, target: str) -> None:
    answer = exchange(gateway.port, get(target))
    assert answer.status == 404
    assert b"This sign-in link is not valid" in answer.body


@pytest.mark.parametrize("target", [b"/me/welcome/gpi_\x00abc/", "/me/welcome/gpi_\u00e9t\u00e9/".encode()])
def test_raw_bytes_no_uri_may_hold_are_refused_before_the_page(gateway: Gateway, target: bytes) -> None:
    answer = exchange(gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert answer.status == 400
