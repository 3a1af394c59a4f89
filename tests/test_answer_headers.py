"""An executor cannot choose what an API answer is: only the API's content types and allowed headers pass."""

from __future__ import annotations

import pytest
from django.http import BadHeaderError, HttpResponse

from executors.dispatcher import ResponseHead
from gateway.answer_headers import mark_api_answer, relayed_headers, set_headers
from gemproxy_site.handlers import _head_of
from tests.api_doubles import GENERATE, asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

JSON = "application/json; charset=UTF-8"
STREAM_SSE = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


@pytest.mark.parametrize(
    ("executor_type", "served_type"),
    [
        ("text/html", JSON),
        ("text/html; charset=utf-8", JSON),
        ("application/javascript", JSON),
        ("image/svg+xml", JSON),
        ("application/xhtml+xml", JSON),
        ("text/plain", JSON),
        (None, JSON),
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ("text/event-stream", "text/event-stream"),
    ],
)
async def test_only_the_apis_content_types_are_served(exchanges, key_header, executor_type, served_type) -> None:
    exchanges.head = ResponseHead(200, {"content-type": executor_type} if executor_type else {})
    exchanges.pieces = [b"<script>alert(document.domain)</script>"]

    answer = await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")

    assert answer.headers["content-type"] == served_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.body == b"<script>alert(document.domain)</script>"  # the body itself passes untouched


@pytest.mark.parametrize(
    ("query", "executor_type", "served_type"),
    [
        ("alt=sse", "text/html", "text/event-stream"),
        ("alt=sse", None, "text/event-stream"),
        ("", "text/html", JSON),
        ("", "text/event-stream", JSON),  # no alt: the gateway frames a JSON array
    ],
)
async def test_a_streams_type_is_the_one_of_its_framing_with_nosniff(
    exchanges, key_header, query, executor_type, served_type
) -> None:
    exchanges.head = ResponseHead(200, {"content-type": executor_type} if executor_type else {})
    exchanges.pieces = [b'data: {"a": 1}\r\n\r\n' if query else b'[{"a": 1}]']

    answer = await asgi_call("POST", STREAM_SSE, query=query, headers=key_header, body=b"{}")

    assert answer.status == 200
    assert answer.headers["content-type"] == served_type
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_headers_outside_the_allow_list_never_reach_the_client(exchanges, key_header) -> None:
    exchanges.head = ResponseHead(
        429,
        {
            "content-type": "application/json",
            "set-cookie": "session=stolen; Path=/",
            "location": "https://evil.example/",
            "content-security-policy": "default-src *",
            "access-control-allow-origin": "https://evil.example",
            "retry-after": "36",
        },
    )
    exchanges.pieces = [b'{"error": {"code": 429}}']

    answer = await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")

    assert answer.status == 429
    assert "set-cookie" not in answer.headers
    assert "location" not in answer.headers
    assert "content-security-policy" not in answer.headers
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["retry-after"] == "36"


@pytest.mark.parametrize(
    "retry_after",
    ["36\r\nSet-Cookie: a=b", "36\n", "\x00", "soon", "1" * 300, "-1", "3.5", "36\r\n\r\n<html>"],
)
async def test_an_unsound_retry_after_is_dropped_not_a_500(exchanges, key_header, retry_after: str) -> None:
    exchanges.head = ResponseHead(503, {"content-type": "application/json", "retry-after": retry_after})
    exchanges.pieces = [b"{}"]

    answer = await asgi_call("POST", GENERATE, headers=key_header, body=b"{}")

    assert answer.status == 503
    assert "retry-after" not in answer.headers
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize("retry_after", ["0", "120", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_in_seconds_or_as_an_http_date_is_relayed(retry_after: str) -> None:
    assert relayed_headers({"Retry-After": retry_after})["retry-after"] == retry_after


def test_headers_of_the_wrong_types_are_ignored() -> None:
    assert relayed_headers({"content-type": 5, 7: "x", "retry-after": ["1"]}) == {"Content-Type": JSON}


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", GENERATE, ""),  # an error of the gateway's own: no key
        ("POST", "/v1beta/models/gemini%00:generateContent", ""),
        ("GET", GENERATE, ""),  # 405
        ("POST", "/v1beta/nothingHere", ""),  # 404
        ("POST", GENERATE, "alt=json&alt=sse"),
        ("OPTIONS", GENERATE, ""),  # CORS preflight
    ],
)
async def test_every_api_answer_carries_nosniff(method: str, path: str, query: str) -> None:
    answer = await asgi_call(method, path, query=query, body=b"{}" if method == "POST" else b"")

    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["access-control-allow-origin"] == "*"
    if answer.status != 204:
        assert answer.headers["content-type"] == JSON
        assert set(answer.error) >= {"code", "message", "status"}


def test_headers_set_at_once_read_back_as_django_would_store_them() -> None:
    # set_headers and ApiHandler read Django's header store directly: this holds Django to the layout they rely on.
    response = HttpResponse(b"{}")
    set_headers(response, {"X-RateLimit-Limit-Requests": "60", "x-request-id": "abc-123"})
    mark_api_answer(response)

    assert response["x-ratelimit-limit-requests"] == "60"
    assert response["X-Request-Id"] == "abc-123"
    assert ("X-RateLimit-Limit-Requests", "60") in response.items()
    assert response["Access-Control-Allow-Origin"] == "*"
    head = _head_of(response)
    assert (b"X-RateLimit-Limit-Requests", b"60") in head
    assert (b"X-Content-Type-Options", b"nosniff") in head
    assert len(head) == len(response.items())


def test_an_answers_own_cors_header_is_kept_and_nosniff_always_set() -> None:
    response = HttpResponse(b"{}")
    response["Access-Control-Allow-Origin"] = "https://studio.example"
    response["X-Content-Type-Options"] = "sniff-away"

    mark_api_answer(response)

    assert response["Access-Control-Allow-Origin"] == "https://studio.example"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_header_that_could_split_the_answer_is_refused_as_django_refuses_it() -> None:
    response = HttpResponse(b"{}")
    with pytest.raises(BadHeaderError):
        set_headers(response, {"x-request-id": "abc\r\nSet-Cookie: session=stolen"})
    with pytest.raises(BadHeaderError):
        set_headers(response, {"x-request-id": "abc\nSet-Cookie: session=stolen"})
    assert "x-request-id" not in response
    assert "set-cookie" not in response


def test_a_header_outside_printable_ascii_is_left_to_django() -> None:
    response = HttpResponse(b"{}")

    set_headers(response, {"x-latin": "café", "x-note": "done ✓", "x-count": 3})  # type: ignore[dict-item]

    assert response["x-latin"] == "café"  # latin-1, which Django keeps as it is
    assert response["x-note"] == "=?utf-8?b?ZG9uZSDinJM=?="  # Django's MIME encoding, as before
    assert response["x-count"] == "3"
    assert (b"x-latin", "café".encode("latin1")) in _head_of(response)
