"""Every path under an API prefix answers in Gemini's shape, browsers included (CORS); the site keeps its own."""

from __future__ import annotations

import pytest
from django.urls import reverse

from gemproxy_site.handlers import is_api_path
from tests.api_doubles import GENERATE, asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

JSON = "application/json; charset=UTF-8"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/upload/v1beta/files/x",
        "/upload",
        "/download/v1beta/files",
        "/v1beta",
        "/v1",
        "/v1alpha/",
        "//v1beta/models",
        "///v1/models/gemini-2.5-flash:generateContent",
        "/v1beta/models%0a",
        "/v1beta/models/gemini%0a/x",
        "/v1beta/%0a",
        "/v1beta/nothingHere",
        "/v1/models/a/b/c",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_api_paths_are_not_found_in_geminis_shape(method: str, raw_path: str) -> None:
    answer = await asgi_call(method, raw_path, body=b"{}" if method == "POST" else b"")

    assert answer.status == 404, answer.body
    assert answer.headers["content-type"] == JSON
    assert answer.error["code"] == 404
    assert answer.error["status"] == "NOT_FOUND"


async def test_a_doubled_slash_is_told_apart_from_a_plain_unknown_path() -> None:
    answer = await asgi_call("GET", "//v1beta/models")

    assert "base URL end with a slash" in answer.error["message"]


@pytest.mark.parametrize("path", ["/v1beta", "/v1/", "//v1beta/models", "/upload/v1beta/files", "/v1beta/x\n"])
def test_api_paths_go_to_the_api_handler(path: str) -> None:
    assert is_api_path(path)


@pytest.mark.parametrize("path", ["/me/", "/admin/", "/v1betax", "/uploads", "/healthzz", "/", "/static/x.css"])
def test_other_paths_stay_with_the_site(path: str) -> None:
    assert not is_api_path(path)


def test_the_api_routes_leave_the_sites_url_reversing_intact() -> None:
    assert reverse("admin:index") == "/admin/"


async def test_a_site_page_still_answers_as_the_site() -> None:
    answer = await asgi_call("GET", "/no-such-page/")

    assert answer.status == 404
    assert not answer.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("path", [GENERATE, "/v1beta/models", "/upload/v1beta/files", "/v1beta/anything"])
async def test_a_cors_preflight_is_answered_without_a_key(path: str) -> None:
    answer = await asgi_call(
        "OPTIONS",
        path,
        headers={
            "origin": "https://chat.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-goog-api-key,x-stainless-os",
        },
    )

    assert answer.status == 204
    assert answer.body == b""
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = [name.strip() for name in answer.headers["access-control-allow-headers"].split(",")]
    for name in ("content-type", "x-goog-api-key", "x-goog-api-client", "authorization", "x-goog-upload-protocol"):
        assert name in allowed
    assert "x-stainless-os" in allowed  # what the browser asked for, a well-formed name
    assert int(answer.headers["access-control-max-age"]) > 0


async def test_a_preflight_never_echoes_a_malformed_header_list() -> None:
    answer = await asgi_call(
        "OPTIONS", GENERATE, headers={"access-control-request-headers": "x-a, <script>", "origin": "https://a.example"}
    )

    assert answer.status == 204
    assert "<script>" not in answer.headers["access-control-allow-headers"]


async def test_api_answers_let_browsers_read_them_and_their_limits(exchanges, key_header) -> None:
    answer = await asgi_call("POST", GENERATE, headers={**key_header, "origin": "https://chat.example"}, body=b"{}")

    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    exposed = answer.headers["access-control-expose-headers"]
    assert "retry-after" in exposed and "x-ratelimit-remaining-requests" in exposed and "x-goog-upload-url" in exposed


async def test_the_gateways_own_405_stays_in_geminis_shape() -> None:
    answer = await asgi_call("PUT", GENERATE, body=b"{}")

    assert answer.status == 405
    assert answer.headers["allow"] == "POST"
    assert answer.headers["content-type"] == JSON
    assert answer.error["status"] == "INVALID_ARGUMENT"


async def test_only_the_headers_the_upstream_needs_reach_the_executor(exchanges, key_header) -> None:
    sent = {
        **key_header,
        "content-type": "application/json",
        "accept": "*/*",
        "x-goog-api-client": "google-genai-sdk/1.0",
        "cookie": "session=secret",
        "x-forwarded-for": "10.0.0.1",
    }
    answer = await asgi_call("POST", GENERATE, headers=sent, body=b"{}")

    assert answer.status == 200
    assert exchanges.tasks[-1].headers == {
        "content-type": "application/json",
        "accept": "*/*",
        "x-goog-api-client": "google-genai-sdk/1.0",
    }
