"""The pages around the API work under Daphne as they would for a person: styled, reachable."""

from __future__ import annotations

import httpx2 as httpx

from tests.e2e.harness import Gateway


def test_the_admins_stylesheets_are_served(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/static/admin/css/base.css", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_the_front_page_leads_members_to_their_page(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/", timeout=10)

    assert response.status_code == 302
    assert response.headers["location"] == "/me/"


def test_members_must_sign_in_first(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/me/", timeout=10)

    assert response.status_code == 302
    assert response.headers["location"].startswith("/me/login/")
