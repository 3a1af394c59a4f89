"""Golden cases of the OpenAI Chat Completions translator: OpenAI request in -> Gemini request out,
Gemini answers and chunks in -> OpenAI bodies and events out. Pure: no Django, no I/O."""

from __future__ import annotations

import json

import pytest

from gateway.compat.openai_chat import ChatTranslator, OpenAIChat, gemini_request
from gateway.compat.surface import SurfaceError

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def counter():
    numbers = iter(range(1, 1000))
    return lambda: f"id{next(numbers)}"


def translator(**fields) -> ChatTranslator:
    return ChatTranslator(model=fields.pop("model", "gpt-4o"), ids=counter(), clock=lambda: 1700000000, **fields)


def events(encoded: bytes) -> list:
    """The data of each SSE event, parsed (``[DONE]`` kept as text)."""
    found = []
    for event in encoded.decode().split("\n\n"):
        if event:
            assert event.startswith("data: "), event
            data = event[len("data: ") :]
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def test_system_and_developer_messages_become_the_system_instruction_and_turns_alternate_roles():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "And?"},
        ],
    }
    assert gemini_request(body) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "And?"}]},
        ],
    }


def test_sampling_options_map_to_generation_config():
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "max_completion_tokens": 100,
        "stop": ["END", "STOP"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "reasoning_effort": "low",
        "user": "someone",
        "parallel_tool_calls": True,
    }
    assert gemini_request(body)["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 100,  # max_completion_tokens wins over the deprecated max_tokens
        "stopSequences": ["END", "STOP"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "thinkingConfig": {"thinkingBudget": 1024},
    }


def test_response_formats_ask_for_json_and_pass_the_schema():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    as_object = gemini_request({**base, "response_format": {"type": "json_object"}})
    assert as_object["generationConfig"] == {"responseMimeType": "application/json"}
    as_schema = gemini_request(
        {**base, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}}
    )
    assert as_schema["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_images_as_data_urls_are_inline_and_http_urls_are_file_data():
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp", "detail": "low"}},
                ],
            }
        ],
    }
    assert gemini_request(body)["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}},
    ]


def test_tools_tool_choice_and_a_round_trip_with_parallel_calls_and_results():
    body = {
        "model": "m",
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        "extra_content": {"google": {"thought_signature": "c2ln"}},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 18}'},
            {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
        ],
    }
    request = gemini_request(body)
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        }
    ]
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert request["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
            ],
        },
    ]


@pytest.mark.parametrize(("choice", "mode"), [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")])
def test_tool_choice_words_map_to_function_calling_modes(choice, mode):
    body = {
        "model": "m",
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
        "messages": [{"role": "user", "content": "x"}],
    }
    assert gemini_request(body)["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_extra_body_google_is_passed_through_in_both_spellings():
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    thinking = {"thinking_budget": 64, "include_thoughts": True}
    for extras in (
        {"google": {"thinking_config": thinking, "cached_content": "cachedContents/abc"}},
        {"extra_body": {"google": {"thinking_config": thinking, "cached_content": "cachedContents/abc"}}},
    ):
        request = gemini_request({**base, **extras})
        assert request["generationConfig"] == {"thinkingConfig": thinking}
        assert request["cachedContent"] == "cachedContents/abc"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": True}, "max_tokens"),
        ({"n": 100}, "n"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]},
                    {"role": "user", "content": "x"},
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_unfit_requests_are_refused_with_a_400_naming_the_parameter(change, param):
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **change}
    with pytest.raises(SurfaceError) as refused:
        gemini_request(body)
    assert (refused.value.http_status, refused.value.param) == (400, param)


def test_parse_picks_the_streaming_action_and_keeps_the_named_model():
    call = OpenAIChat().parse(
        {
            "model": "gpt-4o",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "x"}],
        },
        {},
    )
    assert (call.model, call.action) == ("gpt-4o", "streamGenerateContent")
    assert isinstance(call.translator, ChatTranslator) and call.translator.include_usage


def test_a_whole_answer_with_thoughts_and_a_tool_call():
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Let me check.", "thought": True},
                        {"text": "Checking."},
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "c2ln",
                        },
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [],
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 3,
            "cachedContentTokenCount": 2,
            "totalTokenCount": 18,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abc123",
    }
    assert translator().unary(answer) == {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "reasoning_content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_id1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                            "extra_content": {"google": {"thought_signature": "c2ln"}},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 8,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }


@pytest.mark.parametrize(
    ("gemini", "openai"), [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("OTHER", "stop")]
)
def test_finish_reasons(gemini, openai):
    answer = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": gemini}]}
    assert translator().unary(answer)["choices"][0]["finish_reason"] == openai


def test_a_blocked_prompt_answers_one_content_filtered_choice():
    answer = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    choices = translator().unary(answer)["choices"]
    assert [(c["message"]["content"], c["finish_reason"]) for c in choices] == [("", "content_filter")]


def test_a_text_stream_with_usage_at_the_end():
    chat = translator(include_usage=True)
    chunks = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1},
            "responseId": "r1",
        },
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "lo"}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6},
            "responseId": "r1",
        },
    ]
    encoded = b"".join(chat.stream_chunk(chunk) for chunk in chunks) + chat.stream_end()
    head = {"id": "chatcmpl-r1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o"}
    assert events(encoded) == [
        {
            **head,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None, "logprobs": None}
            ],
            "usage": None,
        },
        {
            **head,
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None, "logprobs": None}],
            "usage": None,
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}], "usage": None},
        {
            **head,
            "choices": [],
            "usage": {
                "prompt_tokens": 4,
                "completion_tokens": 2,
                "total_tokens": 6,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
        "[DONE]",
    ]


def test_streamed_tool_calls_are_indexed_deltas_with_whole_arguments():
    chat = translator()
    chunks = [
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}, "index": 0}]},
        {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"name": "g", "args": {}}}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        },
    ]
    found = events(b"".join(chat.stream_chunk(chunk) for chunk in chunks) + chat.stream_end())
    deltas = [event["choices"][0]["delta"] for event in found[:-1]]
    assert deltas[0]["tool_calls"] == [
        {"index": 0, "id": "call_id2", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert deltas[1]["tool_calls"] == [
        {"index": 1, "id": "call_id3", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    ]
    assert found[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert "usage" not in found[0]  # only with stream_options.include_usage
    assert found[-1] == "[DONE]"


def test_a_stream_error_is_an_openai_error_event():
    assert events(translator().stream_error(503, "busy")) == [
        {"error": {"message": "busy", "type": "server_error", "param": None, "code": "service_unavailable"}}
    ]


def test_a_tool_call_whose_signature_the_client_dropped_gets_googles_stand_in_on_the_first_call_only():
    calls = [{"id": f"call_{n}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for n in range(2)]
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_0", "content": "1"},
            {"role": "tool", "tool_call_id": "call_1", "content": "2"},
        ],
    }
    parts = gemini_request(body)["contents"][1]["parts"]
    assert [part.get("thoughtSignature") for part in parts] == ["skip_thought_signature_validator", None]
