"""Which body limit a path gets: the route table read from settings."""

from __future__ import annotations

import pytest

from gemproxy_site.body_limits import _ROUTE_LIMITS, body_limit, payload_too_large_message


@pytest.fixture(autouse=True)
def limits(settings) -> None:
    settings.GEMPROXY_MAX_BODY_BYTES = 20_000
    settings.GEMPROXY_MAX_UPLOAD_BODY_BYTES = 3_000_000
    settings.GEMPROXY_MAX_SITE_BODY_BYTES = 1_000


@pytest.mark.parametrize(
    "path",
    ["/v1/models/gemini:generateContent", "/v1beta/models", "/v1alpha/models/x:countTokens", "/v1beta/files"],
)
def test_the_gemini_json_api_gets_the_api_limit(path: str) -> None:
    assert body_limit(path) == 20_000


def test_uploads_get_their_own_limit() -> None:
    assert body_limit("/upload/v1beta/files") == 3_000_000


@pytest.mark.parametrize(
    "path", ["/", "/admin/login/", "/me/", "/api/v1/me/keys", "/healthz", "/ws/executor", "/v1beta", "//v1beta/models"]
)
def test_everything_else_gets_the_site_limit(path: str) -> None:
    assert body_limit(path) == 1_000


def test_the_error_names_the_limit_in_googles_words() -> None:
    assert payload_too_large_message(20_000) == "Request payload size exceeds the limit: 20000 bytes."


def test_no_route_prefix_is_inside_another_so_the_first_match_decides() -> None:
    prefixes = [prefix for prefix, _setting in _ROUTE_LIMITS]
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
