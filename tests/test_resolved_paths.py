"""The API's URL resolution is remembered per path (gemproxy_site.handlers.resolve_path), and never wrong for it."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, clear_url_caches

from gemproxy_site import handlers
from gemproxy_site.handlers import resolve_path

API = "gemproxy_site.api_urls"


@pytest.fixture(autouse=True)
def empty() -> None:
    handlers._resolved.clear()


def test_a_path_resolved_again_is_the_same_match_with_its_own_arguments() -> None:
    flash = resolve_path(API, "/v1beta/models/gemini-2.5-flash:generateContent")
    pro = resolve_path(API, "/v1beta/models/gemini-2.5-pro:streamGenerateContent")

    assert resolve_path(API, "/v1beta/models/gemini-2.5-flash:generateContent") is flash
    assert flash.kwargs == {"version": "v1beta", "resource": "models/gemini-2.5-flash", "action": "generateContent"}
    assert pro.kwargs == {"version": "v1beta", "resource": "models/gemini-2.5-pro", "action": "streamGenerateContent"}
    assert flash.func is pro.func


def test_a_client_sending_a_new_path_each_time_holds_no_more_than_the_bound(monkeypatch) -> None:
    monkeypatch.setattr(handlers, "RESOLVED_PATHS", 50)
    for n in range(500):
        resolve_path(API, f"/v1beta/models/model-{n}:generateContent")

    assert len(handlers._resolved) == 50
    assert ("gemproxy_site.api_urls", "/v1beta/models/model-499:generateContent") in handlers._resolved


def test_the_most_used_path_stays_while_others_come_and_go(monkeypatch) -> None:
    monkeypatch.setattr(handlers, "RESOLVED_PATHS", 10)
    hot = resolve_path(API, "/v1beta/models/hot:generateContent")
    for n in range(100):
        resolve_path(API, f"/v1beta/models/cold-{n}:generateContent")
        assert resolve_path(API, "/v1beta/models/hot:generateContent") is hot


def test_new_url_patterns_are_not_answered_from_the_old_ones() -> None:
    before = resolve_path(API, "/healthz")
    clear_url_caches()  # what Django does when ROOT_URLCONF changes

    after = resolve_path(API, "/healthz")

    assert after is not before
    assert after.func is before.func


def test_a_path_that_resolves_to_nothing_is_not_remembered() -> None:
    with pytest.raises(Resolver404):
        resolve_path("tests.lean_api_urls", "/nowhere/at/all")

    assert not handlers._resolved
