"""Gemini answers become Anthropic Messages and stream events that the anthropic SDK reads as Anthropic's own.

Golden inputs: tests/compat_golden/gemini_stream_cases.json (Gemini stream
chunks); golden outputs: anthropic_stream_events.json. The SDK's own stream
accumulator (``client.messages.stream``) must build from the events exactly
the Message the unary translation gives for the same answer in one piece.
"""

from __future__ import annotations

import itertools
import json

import anthropic
import httpx2
import pytest
from anthropic.types import Message

from gateway.compat.anthropic_answers import MessageTranslator, TokenCount
from gateway.compat.anthropic_messages import AnthropicMessages
from tests.compat_golden import load, parsed_events, whole

CHUNKS = {case["name"]: case["chunks"] for case in load("gemini_stream_cases.json")}
EVENTS = {case["name"]: case["events"] for case in load("anthropic_stream_events.json")}


def counting_ids():
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def translator() -> MessageTranslator:
    return MessageTranslator("claude-sonnet-4-5", counting_ids())


def streamed(chunks: list[dict]) -> bytes:
    t = translator()
    return b"".join(t.stream_chunk(chunk) for chunk in chunks) + t.stream_end()


def sdk_client(body: bytes, content_type: str = "text/event-stream", status: int = 200) -> anthropic.Anthropic:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    return anthropic.Anthropic(
        api_key="k", base_url="http://gateway", http_client=httpx2.Client(transport=httpx2.MockTransport(answer))
    )


def sdk_accumulated(raw: bytes) -> Message:
    client = sdk_client(raw)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        return stream.get_final_message()


@pytest.mark.parametrize("name", CHUNKS)
def test_a_gemini_stream_becomes_its_golden_anthropic_events(name: str) -> None:
    assert parsed_events(streamed(CHUNKS[name])) == EVENTS[name]


@pytest.mark.parametrize("name", CHUNKS)
def test_the_sdk_accumulates_the_stream_into_the_unary_message(name: str) -> None:
    unary = translator().unary(whole(CHUNKS[name]))
    assert Message.model_validate(unary).to_dict() == unary
    accumulated = sdk_accumulated(streamed(CHUNKS[name]))
    assert accumulated.to_dict(exclude_none=True) == Message.model_validate(unary).to_dict(exclude_none=True)


def test_events_follow_anthropics_order() -> None:
    names = [e["event"] for e in EVENTS["parallel_function_calls_with_ids_and_signature"]]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    opened = [
        e["data"]["index"]
        for e in EVENTS["parallel_function_calls_with_ids_and_signature"]
        if e["event"] == "content_block_start"
    ]
    closed = [
        e["data"]["index"]
        for e in EVENTS["parallel_function_calls_with_ids_and_signature"]
        if e["event"] == "content_block_stop"
    ]
    assert opened == closed == list(range(5))


def test_function_calls_become_tool_use_blocks_with_gemini_ids_kept_when_valid() -> None:
    message = translator().unary(whole(CHUNKS["parallel_function_calls_with_ids_and_signature"]))
    tools = [block for block in message["content"] if block["type"] == "tool_use"]
    assert [(b["id"], b["name"], b["input"]) for b in tools] == [
        ("fc-1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_weather", {"city": "Rome", "units": {"temp": "C"}}),
        ("toolu_3", "get_time", {}),
    ]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    "name",
    [
        "thoughts_then_signed_text",
        "parallel_function_calls_with_ids_and_signature",
        "signature_alone_in_a_last_empty_part",
    ],
)
def test_an_answer_sent_back_as_the_next_turn_gives_gemini_its_parts_and_signatures_back(name: str) -> None:
    answer = whole(CHUNKS[name])
    message = translator().unary(answer)
    tool_results = [
        {"type": "tool_result", "tool_use_id": block["id"], "content": "ok"}
        for block in message["content"]
        if block["type"] == "tool_use"
    ]
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": tool_results or "next"},
        ],
    }
    sent_back = AnthropicMessages().parse(body, {}).body["contents"][1]["parts"]
    original = answer["candidates"][0]["content"]["parts"]

    # Gemini's parts as the model gave them; consecutive texts merge, ids stay on the Anthropic side.
    def signatures(parts: list[dict]) -> list[str]:
        return [p["thoughtSignature"] for p in parts if "thoughtSignature" in p]

    assert signatures(sent_back) == signatures(original)
    assert [p["functionCall"]["name"] for p in sent_back if "functionCall" in p] == [
        p["functionCall"]["name"] for p in original if "functionCall" in p
    ]
    assert "".join(p.get("text", "") for p in sent_back if not p.get("thought")) == "".join(
        p.get("text", "") for p in original if not p.get("thought")
    )
    for part in sent_back:
        if "functionCall" in part and "thoughtSignature" in part:
            original_call = next(p for p in original if p.get("thoughtSignature") == part["thoughtSignature"])
            assert original_call["functionCall"]["name"] == part["functionCall"]["name"]


def test_usage_counts_cached_and_thinking_tokens_as_anthropic_does() -> None:
    cached = translator().unary(whole(CHUNKS["cut_by_max_tokens_with_cached_prompt"]))
    assert cached["usage"] == {
        "input_tokens": 200,
        "output_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1000,
    }
    assert cached["stop_reason"] == "max_tokens"
    thinking = translator().unary(whole(CHUNKS["thoughts_then_signed_text"]))
    assert thinking["usage"]["output_tokens"] == 3 + 26


def test_a_blocked_prompt_is_an_empty_refusal() -> None:
    message = translator().unary(whole(CHUNKS["prompt_blocked"]))
    assert message["content"] == [] and message["stop_reason"] == "refusal"


def test_a_mid_stream_error_reaches_the_sdk_as_an_api_error() -> None:
    t = translator()
    raw = t.stream_chunk(CHUNKS["text_in_three_chunks"][0]) + t.stream_error(503, "The model is overloaded.")
    assert parsed_events(raw)[-1] == {
        "event": "error",
        "data": {"type": "error", "error": {"type": "overloaded_error", "message": "The model is overloaded."}},
    }
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk_accumulated(raw)
    assert "overloaded" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "kind", "sdk_error"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
    ],
)
def test_errors_have_anthropics_type_for_their_status_and_the_sdk_raises_its_class(status, kind, sdk_error) -> None:
    body = AnthropicMessages().error_body(status, "something", "")
    assert body == {"type": "error", "error": {"type": kind, "message": "something"}}
    client = sdk_client(json.dumps(body).encode(), "application/json", status).with_options(max_retries=0)
    with pytest.raises(sdk_error) as raised:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert raised.value.body == body


def test_the_relay_sides_kind_wins_over_the_status() -> None:
    assert AnthropicMessages().error_body(503, "busy", "overloaded_error")["error"]["type"] == "overloaded_error"
    assert AnthropicMessages().error_body(413, "big", "request_too_large")["error"]["type"] == "request_too_large"


def test_count_tokens_answers_input_tokens() -> None:
    assert TokenCount().unary({"totalTokens": 31, "promptTokensDetails": []}) == {"input_tokens": 31}
    assert TokenCount().unary({"error": "odd"}) == {"input_tokens": 0}


def test_a_unary_message_is_what_the_sdk_returns_from_create() -> None:
    unary = translator().unary(whole(CHUNKS["thoughts_then_signed_text"]))
    client = sdk_client(json.dumps(unary).encode(), "application/json")
    message = client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert [block.type for block in message.content] == ["thinking", "thinking", "text"]
    assert message.content[1].signature == "U0lHLTE="
    assert message.content[2].text == "Hi there!"
