"""Building answers: the generated reply, its stream framing, and embedding values."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from typing import Any

from executors.standin.errors import _DEFAULT_MESSAGES, GoogleError
from executors.standin.prompts import Prompt, count_tokens

# What a disclosing stand-in adds to every answer's modelVersion.
DISCLOSURE = " (gemproxy stand-in, not Google)"


def _dump_pretty(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def _dump_compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def split_text(text: str, pieces: int) -> list[str]:
    bounds = [len(text) * i // pieces for i in range(pieces + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(pieces)]


class Generation:
    """The deterministic answer to one generateContent request, whole or in chunks."""

    def __init__(self, prompt: Prompt, model_id: str, *, disclose: bool = False):
        self.prompt = prompt
        self.model_version = model_id + DISCLOSURE if disclose else model_id
        self.directives = prompt.directives
        self.text = prompt.reply_text()
        self.thought = f"Thinking about: {prompt.last_user_text[:60]}" if self.directives.think else None
        self.response_id = uuid.uuid4().hex[:22]

    def whole(self) -> dict[str, Any]:
        return self._response(self._parts(self.text, first=True), len(self.text), last=True)

    def chunks(self) -> list[dict[str, Any]]:
        pieces = split_text(self.text, self.directives.chunks)
        sent = 0
        chunks = []
        for index, piece in enumerate(pieces):
            sent += len(piece)
            parts = self._parts(piece, first=index == 0)
            chunks.append(self._response(parts, sent, last=index == len(pieces) - 1))
        return chunks

    def _parts(self, text: str, *, first: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if first and self.thought:
            parts.append({"text": self.thought, "thought": True})
        text_part: dict[str, Any] = {"text": text}
        parts.append(text_part)
        if first and self.prompt.signatures:
            text_part["thoughtSignature"] = self.prompt.signatures[0]
            parts.extend({"text": "", "thoughtSignature": s} for s in self.prompt.signatures[1:])
        return parts

    def _response(self, parts: list[dict[str, Any]], chars_sent: int, *, last: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if last:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(chars_sent),
            "modelVersion": self.model_version,
            "responseId": self.response_id,
            "fakeUnknownField": {"note": "unknown fields must pass through"},
        }

    def _usage(self, chars_sent: int) -> dict[str, Any]:
        prompt_tokens = self.prompt.token_count()
        candidates_tokens = count_tokens(self.text[:chars_sent])
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": candidates_tokens,
            "totalTokenCount": prompt_tokens + candidates_tokens,
            "promptTokensDetails": self.prompt.token_details(),
        }
        if self.thought:
            usage["thoughtsTokenCount"] = count_tokens(self.thought)
            usage["totalTokenCount"] += usage["thoughtsTokenCount"]
        return usage


def embedding_values(text: str, dimensions: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    return [round(rng.uniform(-1, 1), 6) for _ in range(dimensions)]


def _sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + _dump_compact(chunk) + b"\r\n\r\n"


def _array_element(chunk: dict[str, Any], index: int) -> bytes:
    return (b"[" if index == 0 else b",\r\n") + _dump_pretty(chunk)


def _midstream_error(sse: bool) -> bytes:
    # An error after the stream started is one compact JSON object in one write;
    # in a JSON-array stream it is the last element.
    error = _dump_compact(GoogleError(500, _DEFAULT_MESSAGES[500]).body())
    return error if sse else b",\r\n" + error + b"\n]"
