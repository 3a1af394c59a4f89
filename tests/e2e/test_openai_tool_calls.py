"""Tool calls the model makes reach an ``openai`` SDK client as OpenAI tool calls, whole and streamed, through
real Daphne and a real headless executor.

The upstream is ``tests.e2e.function_calling_upstream``: it answers as Gemini does when it calls functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.function_calling_upstream import CALLS, FunctionCallingUpstream, running
from tests.e2e.harness import Deployment, Gateway

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(scope="module")
def tool_upstream() -> Iterator[FunctionCallingUpstream]:
    yield from running(response_id="t1")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("tools")), {"GEMPROXY_MODEL_ALIASES": "gpt-4o=gemini-2.5-flash"})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def client(deployment: Deployment, tool_upstream: FunctionCallingUpstream) -> openai.OpenAI:
    gateway: Gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), tool_upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return openai.OpenAI(base_url=f"{gateway.url}/openai/v1", api_key=deployment.proxy_key("alice"), max_retries=0)


def test_parallel_tool_calls_arrive_whole_with_their_signature_and_go_back_with_the_results(client, tool_upstream):
    messages: list = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert completion.usage.total_tokens == 30

    # The round trip: the assistant message as the SDK gives it back (extra_content kept), then the results.
    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": c.id, "content": f'{{"celsius": {18 + n}}}'} for n, c in enumerate(calls)
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    sent = tool_upstream.bodies[-1]["contents"]
    assert sent[1] == {"role": "model", "parts": CALLS}
    assert sent[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"celsius": 18}}},
            {"functionResponse": {"name": "get_weather", "response": {"celsius": 19}}},
        ],
    }


def test_streamed_tool_calls_arrive_as_indexed_deltas_then_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name, json.loads(d.function.arguments)) for d in deltas] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_weather", {"city": "Rome"}),
    ]
    assert all(d.id and d.type == "function" for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.total_tokens == 30
