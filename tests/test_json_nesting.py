"""A body nested deeper than Google's parser allows is a 400 before it is parsed, never a RecursionError."""

from __future__ import annotations

import json
import time

import pytest

from gateway.payload import MAX_NESTING, nesting_depth
from tests.api_doubles import GENERATE, asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header


def parsed_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(parsed_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(parsed_depth, value), default=0)
    return 0


def nested(depth: int) -> bytes:
    """An object whose "contents" holds arrays until ``depth`` levels in all."""
    return b'{"contents": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"{}", 1),
        (b"1", 0),
        (b'{"a": [1, {"b": {}}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),
        (b'{"a": "\\"[[[[", "b": [[]]}', 3),
        (b'{"a": "\\\\", "b": [[]]}', 3),
        (b'{"a": "\\\\\\"[[", "b": []}', 2),
        (nested(100), 100),
    ],
)
def test_depth_counts_only_brackets_outside_strings(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth


def test_depth_agrees_with_the_parser_on_a_real_request() -> None:
    schema: dict = {"type": "string"}
    for level in range(20):
        schema = {"type": "object", "properties": {f"p{level}": schema}}
    request = {"contents": [{"parts": [{"text": 'a "quoted" [text]'}]}], "tools": [{"functionDeclarations": [schema]}]}

    assert nesting_depth(json.dumps(request).encode()) == parsed_depth(request) < MAX_NESTING


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 100_000])
async def test_a_body_nested_too_deep_is_invalid_argument_and_never_dispatched(exchanges, key_header, depth) -> None:
    answer = await asgi_call("POST", GENERATE, headers=key_header, body=nested(depth))

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert f"deeper than {MAX_NESTING} levels" in answer.error["message"]
    assert exchanges.tasks == []


async def test_a_body_at_the_limit_is_relayed(exchanges, key_header) -> None:
    answer = await asgi_call("POST", GENERATE, headers=key_header, body=nested(MAX_NESTING))

    assert answer.status == 200, answer.body
    assert exchanges.tasks[0].body == nested(MAX_NESTING)


def test_the_check_is_cheap_on_a_large_body() -> None:
    image = b'{"contents": [{"parts": [{"inlineData": {"data": "' + b"A" * 15_000_000 + b'"}}]}]}'
    started = time.perf_counter()

    assert nesting_depth(image) == 6
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "body",
    [
        b'{"generationConfig": {"temperature": NaN}}',
        b'{"generationConfig": {"temperature": Infinity}}',
        b'{"n": 1e999}',
    ],
)
async def test_numbers_json_cannot_carry_are_invalid_argument_as_at_google_and_never_dispatched(
    exchanges, key_header, body
) -> None:
    # Python's json would read these as nan and inf; Google's parser refuses them.
    answer = await asgi_call("POST", GENERATE, headers=key_header, body=body)

    assert answer.status == 400, answer.body
    assert answer.error["status"] == "INVALID_ARGUMENT"
    assert answer.error["message"].startswith("Invalid JSON payload received.")
    assert exchanges.tasks == []
