"""Function calls the model makes reach the anthropic SDK as tool_use blocks and the openai SDK as Responses
function_call items, whole and streamed, and go back to Gemini with their signature and the results, through
real Daphne and a real headless executor.

The upstream is ``tests.e2e.function_calling_upstream``: it answers as Gemini does when it calls functions.
Needs the compat routes in ``gateway.compat.urls``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.e2e.function_calling_upstream import CALLS, FunctionCallingUpstream, running
from tests.e2e.harness import Deployment, Gateway

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def calling_upstream() -> Iterator[FunctionCallingUpstream]:
    yield from running()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, calling_upstream: FunctionCallingUpstream
) -> Iterator[tuple[Gateway, str]]:
    aliases = "claude-sonnet-4-5=gemini-2.5-flash,gpt-5=gemini-2.5-flash"
    install = Deployment(Path(tmp_path_factory.mktemp("compat-tools")), {"GEMPROXY_MODEL_ALIASES": aliases})
    gateway = install.start_gateway()
    install.start_agent(gateway, install.executor_token(), calling_upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    yield gateway, install.proxy_key("alice")
    install.stop()


@pytest.fixture(scope="module")
def claude(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway[0].url, api_key=gateway[1], max_retries=0)


@pytest.fixture(scope="module")
def responses(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway[0].url}/openai/v1", api_key=gateway[1], max_retries=0)


def test_anthropic_tool_use_round_trips_with_its_signature_and_results(claude, calling_upstream):
    tools = [{"name": "get_weather", "input_schema": SCHEMA}]
    messages: list = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, tools=tools, messages=messages)
    assert message.stop_reason == "tool_use"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]

    messages.append({"role": "assistant", "content": [block.to_dict() for block in message.content]})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": f"{18 + n}C"} for n, u in enumerate(uses)
            ],
        }
    )
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, tools=tools, messages=messages)
    sent = calling_upstream.bodies[-1]["contents"]
    assert sent[1] == {"role": "model", "parts": CALLS}
    assert [p["functionResponse"] for p in sent[2]["parts"]] == [
        {"name": "get_weather", "response": {"content": "18C"}},
        {"name": "get_weather", "response": {"content": "19C"}},
    ]


def test_anthropic_streamed_tool_use_accumulates_into_the_calls(claude):
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=[{"name": "get_weather", "input_schema": SCHEMA}],
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 9


def test_responses_function_calls_continue_by_previous_response_id(responses, calling_upstream):
    tools = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
    first = responses.responses.create(model="gpt-5", input="Weather in Paris and Rome?", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"{18 + n}C"} for n, c in enumerate(calls)
    ]
    responses.responses.create(model="gpt-5", previous_response_id=first.id, input=outputs, tools=tools)
    sent = calling_upstream.bodies[-1]["contents"]
    assert sent[1] == {"role": "model", "parts": CALLS}
    assert [p["functionResponse"]["response"] for p in sent[2]["parts"]] == [{"output": "18C"}, {"output": "19C"}]


def test_responses_streamed_function_calls_accumulate_into_items(responses):
    tools = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
    with responses.responses.stream(model="gpt-5", input="Weather?", tools=tools) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.count("response.function_call_arguments.done") == 2
    assert [json.loads(item.arguments) for item in final.output if item.type == "function_call"] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
