"""The query string is read once: one value per parameter decides both the framing and the upstream's query."""

from __future__ import annotations

import pytest

from gateway.query import parse_query
from tests.api_doubles import GENERATE, asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def test_the_key_is_dropped_by_its_decoded_name_and_the_rest_is_re_encoded() -> None:
    for spelling in ("key", "%6Bey", "k%65y", "%6b%65%79"):
        query = parse_query(f"{spelling}=secret&alt=sse&pageToken=a%2Bb%26c%3Dd")
        assert query.forwarded() == "alt=sse&pageToken=a%2Bb%26c%3Dd"


def test_alt_decides_the_framing() -> None:
    assert parse_query("alt=sse").alt == "sse"
    assert parse_query("alt=json").alt == "json"
    assert parse_query("").alt == "json"
    assert parse_query("%24alt=json;enum-encoding=int").alt == "json"


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("alt=json&alt=sse", "'alt' was given more than once"),
        ("alt=sse&alt=json", "'alt' was given more than once"),
        ("alt=sse&%24alt=json", "'alt' was given more than once"),
        ("a%6Ct=sse&alt=json", "'alt' was given more than once"),
        ("key=a&key=b", "'key' was given more than once"),
        ("alt=proto", "alt=json and alt=sse"),
        ("alt=media", "alt=json and alt=sse"),
        ("alt=SSE", "alt=json and alt=sse"),
        ("alt=", "alt=json and alt=sse"),
        ("%24alt=xml", "Invalid value for $alt"),
        ("pageToken=a%0d%0aX:1", "control characters"),
        ("pageToken=%00", "control characters"),
        ("na%0Ame=1", "Invalid query parameter name"),
        ("%FF=1", "not UTF-8"),
        ("pageToken=%C3", "not UTF-8"),
    ],
)
async def test_a_query_read_two_ways_or_not_relayable_is_refused_before_dispatch(
    exchanges, key_header, query: str, why: str
) -> None:
    answer = await asgi_call("POST", STREAM, query=query, headers=key_header, body=b"{}")

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert why.replace("'", '"') in answer.error["message"]
    assert exchanges.tasks == []


@pytest.mark.parametrize("count", [101, 1001, 5000])
async def test_too_many_query_parameters_are_a_400_not_a_500(exchanges, key_header, count: int) -> None:
    query = "&".join(f"p{i}=1" for i in range(count))

    answer = await asgi_call("POST", GENERATE, query=query, headers=key_header, body=b"{}")

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert "Too many query parameters" in answer.error["message"]
    assert exchanges.tasks == []


async def test_the_upstream_is_asked_with_the_same_alt_that_frames_the_answer(exchanges, key_header) -> None:
    exchanges.head.headers["content-type"] = "text/event-stream"
    exchanges.pieces = [b'data: {"candidates": []}\r\n\r\n']

    answer = await asgi_call("POST", STREAM, query="alt=sse&key=x-never-forwarded", headers=key_header, body=b"{}")

    assert answer.status == 200, answer.body
    assert exchanges.tasks[0].query == "alt=sse"
    assert answer.headers["content-type"] == "text/event-stream"
    assert answer.body == b'data: {"candidates": []}\r\n\r\n'


async def test_a_key_in_the_query_authenticates_whatever_its_spelling_and_is_never_forwarded(
    exchanges, amake_key
) -> None:
    _, secret = await amake_key()

    answer = await asgi_call("POST", GENERATE, query=f"%6Bey={secret}&alt=json", body=b"{}")

    assert answer.status == 200, answer.body
    assert exchanges.tasks[0].query == "alt=json"
