"""Tool calls the model makes reach an ``openai`` SDK client as OpenAI tool calls, whole and streamed, through
real Daphne and a real headless executor.

The shared fake upstream only echoes, so here a small upstream answers as Gemini does when it decides to call
functions: two ``functionCall`` parts (parallel calls), the first with a ``thoughtSignature``; streamed, one
call per chunk, ``finishReason`` and cumulative ``usageMetadata`` on the last.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from aiohttp import web

from tests.e2e.harness import Deployment, Gateway

CALLS = [
    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
]
USAGE = {"promptTokenCount": 21, "candidatesTokenCount": 9, "totalTokenCount": 30}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def _answer(parts: list[dict], last: bool) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
    if last:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": USAGE, "modelVersion": "gemini-2.5-flash", "responseId": "t1"}


class FunctionCallingUpstream:
    """Answers every generate call with the two function calls, on its own loop in a thread."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1beta/models/{call}", self._generate)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        if request.match_info["call"].endswith(":generateContent"):
            return web.json_response(_answer(CALLS, last=True))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, part in enumerate(CALLS):
            event = json.dumps(_answer([part], last=index == len(CALLS) - 1), separators=(",", ":"))
            await response.write(f"data: {event}\r\n\r\n".encode())
        return response

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def tool_upstream() -> Iterator[FunctionCallingUpstream]:
    upstream = FunctionCallingUpstream()
    yield upstream
    upstream.stop()


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
