"""OpenAI Responses requests become the Gemini requests in tests/compat_golden/responses_request_cases.json."""

from __future__ import annotations

import pytest

from gateway.compat.openai_responses import OpenAIResponses
from gateway.compat.response_store import BoundedResponseStore
from tests.compat_golden import load

CASES = load("responses_request_cases.json")


def surface() -> OpenAIResponses:
    return OpenAIResponses(store=BoundedResponseStore())


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_each_request_translates_to_its_golden_gemini_call(case: dict) -> None:
    call = surface().parse(case["request"], {"authorization": "Bearer k"})
    assert {"model": call.model, "action": call.action, "body": call.body} == case["gemini"]


def test_the_usage_prefix_is_openai_responses() -> None:
    assert surface().name == "openai.responses"


def test_a_function_call_output_gets_the_name_of_the_call_its_call_id_names() -> None:
    body = {
        "model": "m",
        "input": [
            {"type": "function_call", "call_id": "c2", "name": "second", "arguments": "{}"},
            {"type": "function_call", "call_id": "c1", "name": "first", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "1"},
            {"type": "function_call_output", "call_id": "c2", "output": "2"},
        ],
    }
    results = surface().parse(body, {}).body["contents"][1]["parts"]
    assert [r["functionResponse"]["name"] for r in results] == ["first", "second"]


def test_system_and_developer_messages_join_the_instructions_in_order() -> None:
    body = {
        "model": "m",
        "instructions": "First.",
        "input": [
            {"role": "system", "content": "Second."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "input_text", "text": "Third."}]},
        ],
    }
    system = surface().parse(body, {}).body["systemInstruction"]["parts"]
    assert [p["text"] for p in system] == ["First.", "Second.", "Third."]
