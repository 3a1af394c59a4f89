"""Anthropic Messages requests become the Gemini requests in tests/compat_golden/anthropic_request_cases.json."""

from __future__ import annotations

import pytest

from gateway.compat.anthropic_messages import AnthropicCountTokens, AnthropicMessages
from tests.compat_golden import load

CASES = load("anthropic_request_cases.json")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_each_request_translates_to_its_golden_gemini_call(case: dict) -> None:
    surface = AnthropicCountTokens() if case["name"].startswith("count_tokens") else AnthropicMessages()
    call = surface.parse(case["request"], {"anthropic-version": "2023-06-01"})
    assert {"model": call.model, "action": call.action, "body": call.body} == case["gemini"]


def test_the_usage_prefix_is_anthropic_messages_for_both_routes() -> None:
    assert AnthropicMessages.name == AnthropicCountTokens.name == "anthropic.messages"


def test_a_tool_result_gets_the_name_of_the_tool_use_its_id_names() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_b", "name": "second", "input": {}},
                    {"type": "tool_use", "id": "toolu_a", "name": "first", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
                    {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B"},
                ],
            },
        ],
    }
    results = AnthropicMessages().parse(body, {}).body["contents"][2]["parts"]
    assert [r["functionResponse"]["name"] for r in results] == ["first", "second"]


def test_the_signature_of_an_empty_thinking_block_goes_on_the_next_part() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "before"},
                    {"type": "thinking", "thinking": "", "signature": "SIG"},
                    {"type": "text", "text": "after"},
                ],
            },
        ],
    }
    parts = AnthropicMessages().parse(body, {}).body["contents"][1]["parts"]
    assert parts == [{"text": "before"}, {"text": "after", "thoughtSignature": "SIG"}]


def test_a_stream_request_asks_gemini_for_a_stream() -> None:
    body = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    assert AnthropicMessages().parse(body, {}).action == "streamGenerateContent"


def test_a_replayed_tool_use_without_a_signature_gets_googles_stand_in_on_the_first_call_only() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1"}, {"type": "tool_result", "tool_use_id": "t2"}],
            },
        ],
    }
    calls = AnthropicMessages().parse(body, {}).body["contents"][1]["parts"]
    assert [part.get("thoughtSignature") for part in calls] == ["skip_thought_signature_validator", None]
