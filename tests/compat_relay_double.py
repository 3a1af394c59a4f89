"""A stand-in for the relay side of the compat contract, for testing the surfaces' routes alone.

It does what the contract gives the relay side to do, minimally: parse the
JSON body, call ``surface.parse``, turn a SurfaceError into the surface's
error, and feed the translator canned Gemini answers (an echo of the last
user text), whole or as a stream. The real relay side (compat-openai's
``gateway.compat.relay``) adds keys, aliases, limits, dispatch and usage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from gateway.compat.surface import GeminiCall, Surface, SurfaceError

MODELS = {
    "models": [
        {
            "name": "models/gemini-2.5-flash",
            "displayName": "Gemini 2.5 Flash",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }
    ]
}


class RelayDouble:
    def __init__(self) -> None:
        self.calls: list[tuple[Surface, GeminiCall]] = []

    def last_text(self, call: GeminiCall) -> str:
        for content in reversed(call.body.get("contents", [])):
            for part in reversed(content["parts"]):
                if content["role"] == "user" and part.get("text"):
                    return part["text"]
        return ""

    def chunks(self, call: GeminiCall) -> list[dict]:
        text = f"echo: {self.last_text(call)}"
        half = len(text) // 2
        usage = {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10}
        return [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": text[:half]}]}}], "usageMetadata": usage},
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": text[half:]}]}, "finishReason": "STOP"}
                ],
                "usageMetadata": usage,
            },
        ]

    def answer(self, call: GeminiCall) -> dict:
        if call.action == "models.list":
            return MODELS
        if call.action == "countTokens":
            return {"totalTokens": 12}
        chunks = self.chunks(call)
        text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": chunks[-1]["usageMetadata"],
        }

    async def serve(self, request: HttpRequest, surface: Surface) -> HttpResponse:
        try:
            body = json.loads(request.body) if request.body else {}
            call = surface.parse(body, request.headers)
        except SurfaceError as refused:
            return JsonResponse(
                surface.error_body(refused.http_status, refused.message, refused.kind), status=refused.http_status
            )
        except ValueError:
            return JsonResponse(
                surface.error_body(400, "The body is not valid JSON.", "invalid_request_error"), status=400
            )
        self.calls.append((surface, call))
        if call.action != "streamGenerateContent":
            return JsonResponse(call.translator.unary(self.answer(call)))

        async def events() -> AsyncIterator[bytes]:
            for chunk in self.chunks(call):
                yield call.translator.stream_chunk(chunk)
            yield call.translator.stream_end()

        return StreamingHttpResponse(events(), content_type="text/event-stream")
