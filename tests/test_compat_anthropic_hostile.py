"""Malformed Anthropic requests are refused before any Gemini call, with a 400 in Anthropic's error shape."""

from __future__ import annotations

import pytest
from anthropic.types.shared.error_response import ErrorResponse

from gateway.compat.anthropic_messages import AnthropicCountTokens, AnthropicMessages
from gateway.compat.surface import SurfaceError

GOOD = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def with_(**changes) -> dict:
    return {**GOOD, **changes}


def turn(*blocks: dict) -> list:
    return [{"role": "user", "content": list(blocks)}]


def assistant(*blocks: dict) -> list:
    return [{"role": "assistant", "content": list(blocks)}]


def image(**source) -> list:
    return turn({"type": "image", "source": source})


HOSTILE = {
    "body_is_an_array": [GOOD],
    "body_is_a_string": "hello",
    "model_missing": {k: v for k, v in GOOD.items() if k != "model"},
    "model_empty": with_(model=""),
    "model_a_number": with_(model=7),
    "max_tokens_missing": {k: v for k, v in GOOD.items() if k != "max_tokens"},
    "max_tokens_zero": with_(max_tokens=0),
    "max_tokens_a_string": with_(max_tokens="10"),
    "max_tokens_a_boolean": with_(max_tokens=True),
    "max_tokens_a_float": with_(max_tokens=1.5),
    "messages_missing": {k: v for k, v in GOOD.items() if k != "messages"},
    "messages_an_object": with_(messages={"role": "user"}),
    "messages_empty": with_(messages=[]),
    "messages_only_empty_content": with_(messages=[{"role": "user", "content": ""}]),
    "message_not_an_object": with_(messages=["hi"]),
    "role_unknown": with_(messages=[{"role": "system", "content": "hi"}]),
    "content_missing": with_(messages=[{"role": "user"}]),
    "content_a_number": with_(messages=[{"role": "user", "content": 3}]),
    "block_without_type": with_(messages=turn({"text": "hi"})),
    "block_type_unknown": with_(messages=turn({"type": "video", "url": "x"})),
    "text_block_text_a_list": with_(messages=turn({"type": "text", "text": ["hi"]})),
    "image_without_source": with_(messages=turn({"type": "image"})),
    "image_source_type_unknown": with_(messages=image(type="file", file_id="f")),
    "image_base64_without_data": with_(messages=image(type="base64", media_type="image/png")),
    "image_url_not_http": with_(messages=image(type="url", url="file:///etc/passwd")),
    "tool_result_for_unknown_id": with_(messages=turn({"type": "tool_result", "tool_use_id": "t", "content": "r"})),
    "tool_use_without_name": with_(messages=assistant({"type": "tool_use", "id": "t", "input": {}})),
    "tool_use_input_a_string": with_(messages=assistant({"type": "tool_use", "id": "t", "name": "f", "input": "{}"})),
    "thinking_block_without_text": with_(messages=assistant({"type": "thinking", "signature": "s"})),
    "system_a_number": with_(system=5),
    "system_block_not_text": with_(system=[{"type": "image", "source": {}}]),
    "temperature_above_one": with_(temperature=1.5),
    "temperature_nan_string": with_(temperature="NaN"),
    "top_p_negative": with_(top_p=-0.1),
    "top_k_zero": with_(top_k=0),
    "stop_sequences_a_string": with_(stop_sequences="END"),
    "stop_sequence_empty": with_(stop_sequences=[""]),
    "stream_a_string": with_(stream="yes"),
    "tools_an_object": with_(tools={"name": "f"}),
    "tool_without_schema": with_(tools=[{"name": "f"}]),
    "server_tool": with_(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
    "tool_choice_unknown": with_(tools=[{"name": "f", "input_schema": {}}], tool_choice={"type": "maybe"}),
    "tool_choice_names_undeclared_tool": with_(
        tools=[{"name": "f", "input_schema": {}}], tool_choice={"type": "tool", "name": "g"}
    ),
    "tool_choice_a_string": with_(tool_choice="auto"),
    "thinking_enabled_without_budget": with_(thinking={"type": "enabled"}),
    "thinking_type_unknown": with_(thinking={"type": "always"}),
    "effort_unknown": with_(output_config={"effort": "extreme"}),
    "output_format_not_json_schema": with_(output_config={"format": {"type": "xml"}}),
    "huge_message_array": with_(messages=[{"role": "user", "content": "x"}] * 10_001),
    "huge_block_array": with_(messages=turn(*[{"type": "text", "text": "x"}] * 10_001)),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_malformed_message_request_is_a_400_invalid_request_error(body) -> None:
    with pytest.raises(SurfaceError) as refused:
        AnthropicMessages().parse(body, {})
    assert refused.value.http_status == 400
    assert refused.value.kind == "invalid_request_error"
    assert refused.value.message
    body = AnthropicMessages().error_body(400, refused.value.message, refused.value.kind)
    assert ErrorResponse.model_validate(body).error.type == "invalid_request_error"


@pytest.mark.parametrize("body", ["x", {"messages": []}, {"model": "m", "messages": "hi"}])
def test_a_malformed_count_tokens_request_is_a_400(body) -> None:
    with pytest.raises(SurfaceError) as refused:
        AnthropicCountTokens().parse(body, {})
    assert refused.value.http_status == 400


def test_the_message_names_the_offending_field() -> None:
    with pytest.raises(SurfaceError) as refused:
        AnthropicMessages().parse(with_(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]), {})
    assert refused.value.param == "messages.0.content.0.text"
    assert "messages.0.content.0.text" in refused.value.message
