"""Malformed Responses requests are refused before any Gemini call, with a 400 in OpenAI's error shape."""

from __future__ import annotations

import httpx2
import openai
import pytest

from gateway.compat.openai_responses import OpenAIResponses
from gateway.compat.response_store import BoundedResponseStore
from gateway.compat.surface import SurfaceError

GOOD = {"model": "m", "input": "hi"}


def with_(**changes) -> dict:
    return {**GOOD, **changes}


def user(*content: dict) -> list:
    return [{"role": "user", "content": list(content)}]


HOSTILE = {
    "body_is_an_array": [GOOD],
    "model_missing": {"input": "hi"},
    "model_empty": with_(model=""),
    "model_a_list": with_(model=["m"]),
    "input_missing": {"model": "m"},
    "input_a_number": with_(input=5),
    "input_empty_string": with_(input=""),
    "input_empty_list": with_(input=[]),
    "item_not_an_object": with_(input=["hi"]),
    "item_type_unknown": with_(input=[{"type": "item_reference", "id": "msg_1"}]),
    "message_role_unknown": with_(input=[{"role": "tool", "content": "x"}]),
    "message_without_role": with_(input=[{"type": "message", "content": "x"}]),
    "message_content_a_number": with_(input=[{"role": "user", "content": 1}]),
    "content_type_unknown": with_(input=user({"type": "input_audio", "data": "x"})),
    "input_text_not_text": with_(input=user({"type": "input_text", "text": {"a": 1}})),
    "image_by_file_id": with_(input=user({"type": "input_image", "file_id": "file-1"})),
    "image_url_not_a_url": with_(input=user({"type": "input_image", "image_url": "/etc/passwd"})),
    "image_data_url_not_base64": with_(input=user({"type": "input_image", "image_url": "data:image/png,abc"})),
    "file_by_file_id": with_(input=user({"type": "input_file", "file_id": "file-1"})),
    "function_call_without_call_id": with_(input=[{"type": "function_call", "name": "f", "arguments": "{}"}]),
    "function_call_arguments_not_json": with_(
        input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{oops"}]
    ),
    "function_call_arguments_a_list": with_(
        input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]
    ),
    "function_output_for_unknown_call": with_(input=[{"type": "function_call_output", "call_id": "c", "output": "x"}]),
    "reasoning_summary_a_string": with_(input=[{"type": "reasoning", "summary": "thought"}]),
    "tools_an_object": with_(tools={"type": "function"}),
    "tool_without_type": with_(tools=[{"name": "f"}]),
    "tool_hosted": with_(tools=[{"type": "file_search", "vector_store_ids": ["v"]}]),
    "tool_custom": with_(tools=[{"type": "custom", "name": "apply_patch"}]),
    "tool_function_without_name": with_(tools=[{"type": "function"}]),
    "tool_parameters_a_string": with_(tools=[{"type": "function", "name": "f", "parameters": "{}"}]),
    "tool_choice_unknown_string": with_(tool_choice="sometimes"),
    "tool_choice_names_undeclared_function": with_(
        tools=[{"type": "function", "name": "f"}], tool_choice={"type": "function", "name": "g"}
    ),
    "tool_choice_hosted": with_(tool_choice={"type": "file_search"}),
    "max_output_tokens_zero": with_(max_output_tokens=0),
    "max_output_tokens_a_string": with_(max_output_tokens="100"),
    "temperature_too_high": with_(temperature=2.5),
    "temperature_a_boolean": with_(temperature=True),
    "top_p_too_high": with_(top_p=1.01),
    "reasoning_a_string": with_(reasoning="high"),
    "reasoning_effort_unknown": with_(reasoning={"effort": "maximal"}),
    "reasoning_summary_unknown": with_(reasoning={"summary": "verbose"}),
    "text_format_unknown": with_(text={"format": {"type": "xml"}}),
    "json_schema_without_schema": with_(text={"format": {"type": "json_schema", "name": "x"}}),
    "stream_a_string": with_(stream="true"),
    "store_a_number": with_(store=1),
    "instructions_a_list": with_(instructions=["x"]),
    "previous_response_unknown": with_(previous_response_id="resp_nope"),
    "previous_response_id_a_number": with_(previous_response_id=7),
    "huge_input_array": with_(input=[{"role": "user", "content": "x"}] * 10_001),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_malformed_responses_request_is_a_400_invalid_request_error(body) -> None:
    surface = OpenAIResponses(store=BoundedResponseStore())
    with pytest.raises(SurfaceError) as refused:
        surface.parse(body, {})
    assert refused.value.http_status == 400
    assert refused.value.kind == "invalid_request_error"
    assert refused.value.message


def test_the_error_names_the_offending_field() -> None:
    with pytest.raises(SurfaceError) as refused:
        OpenAIResponses(store=BoundedResponseStore()).parse(with_(input=user({"type": "input_text", "text": 3})), {})
    assert refused.value.param == "input[0].content[0].text"


@pytest.mark.parametrize(
    ("status", "kind", "sdk_error"),
    [
        (400, "invalid_request_error", openai.BadRequestError),
        (401, "authentication_error", openai.AuthenticationError),
        (403, "permission_error", openai.PermissionDeniedError),
        (404, "invalid_request_error", openai.NotFoundError),
        (429, "rate_limit_error", openai.RateLimitError),
        (500, "server_error", openai.InternalServerError),
    ],
)
def test_errors_are_in_openais_shape_and_the_sdk_raises_its_class(status, kind, sdk_error) -> None:
    body = OpenAIResponses(store=BoundedResponseStore()).error_body(status, "went wrong", "rate_limit_error")
    assert body == {"error": {"message": "went wrong", "type": kind, "param": None, "code": None}}

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body)

    client = openai.OpenAI(
        api_key="k",
        base_url="http://gateway/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
    with pytest.raises(sdk_error) as raised:
        client.responses.create(model="m", input="x")
    assert raised.value.message.endswith("went wrong") or "went wrong" in str(raised.value)
