"""Golden cases of the compat translators: reviewed inputs and outputs, loaded by the tests."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def load(name: str) -> list[dict]:
    return json.loads((HERE / name).read_text())


def parsed_events(raw: bytes) -> list[dict]:
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        events.append({"event": name.removeprefix("event: "), "data": json.loads(data.removeprefix("data: "))})
    return events


def whole(chunks: list[dict]) -> dict:
    """The unary answer Gemini gives for the same content: every chunk's parts, the last usage and finish."""
    parts = [
        part
        for chunk in chunks
        for c in chunk.get("candidates", [])[:1]
        for part in c.get("content", {}).get("parts", [])
    ]
    answer: dict = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}
    for chunk in chunks:
        for candidate in chunk.get("candidates", [])[:1]:
            if "finishReason" in candidate:
                answer["candidates"][0]["finishReason"] = candidate["finishReason"]
        for key in ("usageMetadata", "promptFeedback"):
            if key in chunk:
                answer[key] = chunk[key]
    if not parts and "promptFeedback" in answer:
        del answer["candidates"]
    return answer
