"""A small upstream that answers as Gemini does when the model calls functions, for the compat surfaces' e2e tests.

The shared fake upstream only echoes, so this one answers every generate call
with two ``functionCall`` parts (parallel calls), the first with a
``thoughtSignature``; streamed, one call per chunk, with ``finishReason`` and
cumulative ``usageMetadata`` on the last. It runs on its own loop in a thread,
so sync SDK clients can call the gateway from the test.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

from aiohttp import web

CALLS = [
    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
]
USAGE = {"promptTokenCount": 21, "candidatesTokenCount": 9, "totalTokenCount": 30}


class FunctionCallingUpstream:
    """Every generate call answered with ``CALLS``; ``bodies`` holds what each call sent."""

    def __init__(self, response_id: str | None = None) -> None:
        self.response_id = response_id
        self.bodies: list[dict] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def answer(self, parts: list[dict], last: bool) -> dict:
        candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            candidate["finishReason"] = "STOP"
        answer = {"candidates": [candidate], "usageMetadata": USAGE, "modelVersion": "gemini-2.5-flash"}
        if self.response_id is not None:
            answer["responseId"] = self.response_id
        return answer

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
            return web.json_response(self.answer(CALLS, last=True))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, part in enumerate(CALLS):
            event = json.dumps(self.answer([part], last=index == len(CALLS) - 1), separators=(",", ":"))
            await response.write(f"data: {event}\r\n\r\n".encode())
        return response

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def running(response_id: str | None = None) -> Iterator[FunctionCallingUpstream]:
    """For a module-scoped fixture: the upstream, stopped after the module."""
    upstream = FunctionCallingUpstream(response_id)
    yield upstream
    upstream.stop()
