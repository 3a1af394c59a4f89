"""Gemini answers become OpenAI Responses and typed stream events that the openai SDK reads as OpenAI's own.

Golden inputs: tests/compat_golden/gemini_stream_cases.json; golden outputs:
responses_stream_events.json. The SDK's own stream accumulator
(``client.responses.stream``) must build from the events exactly the
Response the unary translation gives for the same answer in one piece.
"""

from __future__ import annotations

import itertools
import json

import httpx2
import openai
import pytest
from openai.types.responses import Response

from gateway.compat.openai_responses import OpenAIResponses
from gateway.compat.response_store import BoundedResponseStore
from tests.compat_golden import load, parsed_events, whole

CHUNKS = {case["name"]: case["chunks"] for case in load("gemini_stream_cases.json")}
EVENTS = {case["name"]: case["events"] for case in load("responses_stream_events.json")}
INCOMPLETE = {"cut_by_max_tokens_with_cached_prompt", "prompt_blocked", "answer_stopped_for_safety"}


def translator(body: dict | None = None):
    counter = itertools.count(1)
    surface = OpenAIResponses(
        store=BoundedResponseStore(), new_id=lambda prefix: f"{prefix}_{next(counter)}", clock=lambda: 1767225600.0
    )
    return surface.parse(body or {"model": "gpt-5", "input": "q", "stream": True}, {}).translator


def streamed(chunks: list[dict]) -> bytes:
    t = translator()
    return b"".join(t.stream_chunk(chunk) for chunk in chunks) + t.stream_end()


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return openai.OpenAI(
        api_key="k", base_url="http://gateway/v1", http_client=httpx2.Client(transport=httpx2.MockTransport(answer))
    )


@pytest.mark.parametrize("name", CHUNKS)
def test_a_gemini_stream_becomes_its_golden_responses_events(name: str) -> None:
    assert parsed_events(streamed(CHUNKS[name])) == EVENTS[name]


@pytest.mark.parametrize("name", CHUNKS)
def test_every_event_is_one_of_the_sdks_stream_event_types_in_sequence(name: str) -> None:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ResponseStreamEvent)
    for number, event in enumerate(EVENTS[name]):
        parsed = adapter.validate_python(event["data"])
        assert parsed.type == event["event"]
        assert parsed.sequence_number == number


@pytest.mark.parametrize("name", sorted(set(CHUNKS) - INCOMPLETE))
def test_the_sdk_accumulates_the_stream_into_the_unary_response(name: str) -> None:
    unary = translator().unary(whole(CHUNKS[name]))
    with sdk_client(streamed(CHUNKS[name])).responses.stream(model="gpt-5", input="q") as stream:
        final = stream.get_final_response()
    expected = Response.model_validate(unary).to_dict(exclude_none=True)
    got = final.to_dict(exclude_none=True)
    for item in got["output"]:
        for content in item.get("content", []):
            content.pop("parsed", None)
        item.pop("parsed_arguments", None)
    got.pop("output_text", None)
    assert got == expected


@pytest.mark.parametrize("name", sorted(INCOMPLETE))
def test_an_answer_cut_short_ends_with_response_incomplete_and_its_reason(name: str) -> None:
    unary = translator().unary(whole(CHUNKS[name]))
    last = EVENTS[name][-1]
    assert last["event"] == "response.incomplete"
    assert last["data"]["response"]["incomplete_details"] == unary["incomplete_details"]
    assert last["data"]["response"]["output"] == unary["output"]
    assert unary["status"] == "incomplete"
    reasons = {"cut_by_max_tokens_with_cached_prompt": "max_output_tokens"}
    assert unary["incomplete_details"]["reason"] == reasons.get(name, "content_filter")


def test_a_unary_response_is_what_the_sdk_returns_from_create() -> None:
    unary = translator({"model": "gpt-5", "input": "q"}).unary(
        whole(CHUNKS["parallel_function_calls_with_ids_and_signature"])
    )
    response = sdk_client(json.dumps(unary).encode(), "application/json").responses.create(model="gpt-5", input="q")
    assert response.output_text == "Let me check both."
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("fc-1", "get_weather", {"city": "Paris"}),
        ("call_5", "get_weather", {"city": "Rome", "units": {"temp": "C"}}),
        ("call_7", "get_time", {}),
    ]
    assert [item.encrypted_content for item in response.output if item.type == "reasoning"] == ["U0lHLUZD"]


def test_usage_counts_cached_and_reasoning_tokens_as_openai_does() -> None:
    cached = translator().unary(whole(CHUNKS["cut_by_max_tokens_with_cached_prompt"]))
    assert cached["usage"] == {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1204,
    }
    thinking = translator().unary(whole(CHUNKS["thoughts_then_signed_text"]))
    assert thinking["usage"]["output_tokens"] == 29
    assert thinking["usage"]["output_tokens_details"] == {"reasoning_tokens": 26}


def test_the_response_echoes_the_requests_settings() -> None:
    body = {
        "model": "gpt-5",
        "input": "q",
        "instructions": "Be brief.",
        "temperature": 0.3,
        "max_output_tokens": 50,
        "tool_choice": "required",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "reasoning": {"effort": "low"},
        "metadata": {"trace": "1"},
        "store": False,
    }
    response = translator(body).unary(whole(CHUNKS["text_in_three_chunks"]))
    parsed = Response.model_validate(response)
    assert (parsed.instructions, parsed.temperature, parsed.max_output_tokens) == ("Be brief.", 0.3, 50)
    assert parsed.tool_choice == "required" and parsed.tools[0].name == "f"
    assert parsed.reasoning.effort == "low" and parsed.metadata == {"trace": "1"} and parsed.store is False


def test_a_mid_stream_error_ends_the_stream_with_response_failed() -> None:
    t = translator()
    raw = t.stream_chunk(CHUNKS["text_in_three_chunks"][0]) + t.stream_error(503, "The model is overloaded.")
    events = parsed_events(raw)
    assert [e["event"] for e in events][-3:] == [
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
    ]
    failed = Response.model_validate(events[-1]["data"]["response"])
    assert failed.status == "failed"
    assert (failed.error.code, failed.error.message) == ("server_error", "The model is overloaded.")
    with sdk_client(raw).responses.stream(model="gpt-5", input="q") as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.failed"


def test_an_error_before_any_chunk_still_starts_the_response() -> None:
    events = parsed_events(translator().stream_error(429, "Slow down."))
    assert [e["event"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1]["data"]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "Slow down."}


def test_a_call_of_a_namespaced_function_comes_back_with_its_namespace() -> None:
    body = {
        "model": "gpt-5",
        "input": "spawn",
        "tools": [
            {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent"}]}
        ],
    }
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "multi_agent_v1.spawn_agent", "args": {}}}],
                }
            }
        ]
    }
    response = Response.model_validate(translator(body).unary(answer))
    (call,) = response.output
    assert (call.type, call.namespace, call.name) == ("function_call", "multi_agent_v1", "spawn_agent")
    assert response.tools[0].type == "namespace"
