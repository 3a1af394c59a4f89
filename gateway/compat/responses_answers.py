"""Gemini answers as OpenAI Responses: one whole ``Response``, or its typed stream events.

Both come from one walk over Gemini's parts (``_Items``), so a streamed
answer accumulates into exactly the Response the unary call returns.

What Gemini sends that has no place in a Response, and what becomes of it:

- Thought parts are ``reasoning`` items with their text as ``summary_text``
  (Gemini returns thought summaries, not raw reasoning); a thought part's
  ``thoughtSignature`` is the item's ``encrypted_content``. A signature on a
  part that is not a thought (a function call, a text) is carried by a
  ``reasoning`` item with an empty summary placed just before that part's
  item; ``openai_responses`` puts it back on the part that follows.
  ``previous_response_id`` needs none of this: the stored turn is Gemini's own.
- ``inlineData`` / ``fileData`` in the answer (generated images, audio):
  no output item holds them here; dropped.
- ``executableCode`` / ``codeExecutionResult``: fenced Markdown in the text.
- ``safetyRatings``, ``citationMetadata``, ``groundingMetadata`` (search
  sources included), ``avgLogprobs``, ``logprobsResult``, ``modelVersion``,
  ``responseId``, ``urlContextMetadata`` and per-modality token details:
  dropped (``logprobs`` are always ``[]``).
- ``usageMetadata``: ``input_tokens`` is promptTokenCount plus
  toolUsePromptTokenCount, ``cached_tokens`` cachedContentTokenCount,
  ``output_tokens`` candidates plus thoughts, ``reasoning_tokens`` thoughts.
- ``finishReason``: MAX_TOKENS makes the Response ``incomplete`` with reason
  ``max_output_tokens``; the policy reasons and a blocked prompt make it
  ``incomplete`` with ``content_filter``; every other reason is ``completed``.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.compat import gemini_answer as gemini
from gateway.compat.body_fields import compact_json

CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
Remember = Callable[[str, dict, dict[str, str]], None]

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def random_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def now() -> float:
    return time.time()


def openai_error_type(status: int, kind: str | None = None) -> str:
    return OPENAI_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


@dataclass(frozen=True)
class RequestEcho:
    """The request's settings that a Response repeats back."""

    fields: dict = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict, tools: list[dict], previous_response_id: str | None) -> RequestEcho:
        reasoning = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
        text = body["text"] if isinstance(body.get("text"), dict) else {}
        metadata = body.get("metadata")
        return cls(
            {
                "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
                "max_output_tokens": body.get("max_output_tokens"),
                "metadata": metadata if isinstance(metadata, dict) else {},
                "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
                "previous_response_id": previous_response_id,
                "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
                "store": body.get("store") is not False,
                "temperature": body.get("temperature"),
                "text": {"format": text.get("format") or {"type": "text"}},
                "tool_choice": body.get("tool_choice") if body.get("tool_choice") is not None else "auto",
                "tools": tools,
                "top_p": body.get("top_p"),
                "truncation": "disabled",
                "user": body.get("user") if isinstance(body.get("user"), str) else None,
            }
        )


def usage_body(usage: gemini.Usage | None) -> dict | None:
    if usage is None:
        return None
    input_tokens = usage.prompt + usage.tool_prompt
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": 0},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.thoughts},
        "total_tokens": input_tokens + usage.output,
    }


class _Items:
    """Gemini parts, in arrival order, as Response output items and the events that build them."""

    def __init__(self, new_id: Callable[[str], str], namespaced: Mapping[str, tuple[str, str]]) -> None:
        self.new_id = new_id
        self.namespaced = namespaced
        self.output: list[dict] = []
        self.open: str | None = None  # "message" or "reasoning" while the last item can still grow
        self.call_names: dict[str, str] = {}

    @property
    def index(self) -> int:
        return len(self.output) - 1

    def _add(self, item: dict) -> list[dict]:
        events = self.close()
        self.output.append(item)
        self.open = item["type"] if item["type"] in ("message", "reasoning") else None
        events.append({"type": "response.output_item.added", "output_index": self.index, "item": copy.deepcopy(item)})
        return events

    def _done(self, item: dict) -> dict:
        item["status"] = "completed"
        return {"type": "response.output_item.done", "output_index": self.index, "item": copy.deepcopy(item)}

    def close(self) -> list[dict]:
        if self.open is None:
            return []
        item, where = self.output[-1], {"item_id": self.output[-1]["id"], "output_index": self.index}
        events: list[dict] = []
        if self.open == "message":
            part = item["content"][0]
            events.append(
                {"type": "response.output_text.done", **where, "content_index": 0, "text": part["text"], "logprobs": []}
            )
            events.append({"type": "response.content_part.done", **where, "content_index": 0, "part": dict(part)})
        elif item["summary"]:
            part = item["summary"][0]
            events.append(
                {"type": "response.reasoning_summary_text.done", **where, "summary_index": 0, "text": part["text"]}
            )
            events.append(
                {"type": "response.reasoning_summary_part.done", **where, "summary_index": 0, "part": dict(part)}
            )
        self.open = None
        events.append(self._done(item))
        return events

    def _reasoning(self) -> list[dict]:
        # No "status" on a reasoning item until done: the SDK's type has it optional, OpenAI sends none.
        return self._add({"id": self.new_id("rs"), "type": "reasoning", "summary": []})

    def part(self, part: dict) -> list[dict]:
        signature = gemini.signature_of(part)
        events: list[dict] = []
        if gemini.is_thought(part):
            if self.open != "reasoning":
                events += self._reasoning()
            item, where = self.output[-1], {"item_id": self.output[-1]["id"], "output_index": self.index}
            text = gemini.text_of(part)
            if text:
                if not item["summary"]:
                    item["summary"].append({"type": "summary_text", "text": ""})
                    events.append(
                        {
                            "type": "response.reasoning_summary_part.added",
                            **where,
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""},
                        }
                    )
                item["summary"][0]["text"] += text
                events.append(
                    {"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0, "delta": text}
                )
            if signature:
                item["encrypted_content"] = signature
                events += self.close()
            return events
        if signature:
            events += self._reasoning()
            self.output[-1]["encrypted_content"] = signature
            events += self.close()
        call = gemini.function_call(part)
        if call is not None:
            gemini_id = call.get("id")
            call_id = gemini_id if isinstance(gemini_id, str) and CALL_ID.match(gemini_id) else self.new_id("call")
            self.call_names[call_id] = call["name"]
            item = {"id": self.new_id("fc"), "type": "function_call", "status": "in_progress", "call_id": call_id}
            if call["name"] in self.namespaced:
                namespace, name = self.namespaced[call["name"]]
                item |= {"namespace": namespace, "name": name, "arguments": ""}
            else:
                item |= {"name": call["name"], "arguments": ""}
            events += self._add(item)
            arguments = compact_json(gemini.function_args(call))
            item["arguments"] = arguments
            where = {"item_id": item["id"], "output_index": self.index}
            events.append({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
            events.append({"type": "response.function_call_arguments.done", **where, "arguments": arguments})
            events.append(self._done(item))
            return events
        text = gemini.text_of(part)
        if text is None:
            text = gemini.code_text(part)
        if not text:
            return events
        if self.open != "message":
            item = {
                "id": self.new_id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            events += self._add(item)
            content = {"type": "output_text", "text": "", "annotations": []}
            item["content"].append(content)
            where = {"item_id": item["id"], "output_index": self.index}
            events.append({"type": "response.content_part.added", **where, "content_index": 0, "part": dict(content)})
        item = self.output[-1]
        item["content"][0]["text"] += text
        where = {"item_id": item["id"], "output_index": self.index}
        events.append(
            {"type": "response.output_text.delta", **where, "content_index": 0, "delta": text, "logprobs": []}
        )
        return events


class ResponseTranslator:
    """One call's answer, as a Response (``unary``) or as the typed events of its stream."""

    def __init__(
        self,
        model: str,
        echo: RequestEcho,
        new_id: Callable[[str], str] = random_id,
        clock: Callable[[], float] = now,
        remember: Remember | None = None,
        namespaced: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.model = model
        self.echo = echo
        self.response_id = new_id("resp")
        self.created_at = int(clock())
        self.items = _Items(new_id, namespaced or {})
        self.remember = remember
        self.gemini_parts: list[dict] = []
        self.usage: gemini.Usage | None = None
        self.finish: str | None = None
        self.blocked = False
        self.started = False
        self.sequence = 0

    def _observe(self, answer: dict) -> list[dict]:
        self.usage = gemini.Usage.of(answer) or self.usage
        self.finish = gemini.finish_reason(answer) or self.finish
        self.blocked = self.blocked or gemini.block_reason(answer) is not None
        events: list[dict] = []
        for part in gemini.parts(answer):
            self.gemini_parts.append(part)
            events += self.items.part(part)
        return events

    def _incomplete_reason(self) -> str | None:
        if self.blocked or self.finish in gemini.REFUSALS:
            return "content_filter"
        if self.finish == "MAX_TOKENS":
            return "max_output_tokens"
        return None

    def _response(self, status: str, error: dict | None = None) -> dict:
        reason = self._incomplete_reason() if status == "incomplete" else None
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": reason} if reason else None,
            "model": self.model,
            "output": copy.deepcopy(self.items.output) if status != "in_progress" else [],
            "usage": usage_body(self.usage) if status != "in_progress" else None,
            **copy.deepcopy(self.echo.fields),
        }

    def _final(self) -> dict:
        self.items.close()
        response = self._response("incomplete" if self._incomplete_reason() else "completed")
        if self.remember is not None:
            self.remember(self.response_id, {"role": "model", "parts": self.gemini_parts}, self.items.call_names)
        return response

    def unary(self, answer: dict) -> dict:
        self._observe(answer if isinstance(answer, dict) else {})
        return self._final()

    def _encode(self, events: list[dict]) -> bytes:
        out = []
        for event in events:
            event["sequence_number"] = self.sequence
            self.sequence += 1
            out.append(f"event: {event['type']}\ndata: {compact_json(event)}\n\n")
        return "".join(out).encode()

    def _start(self) -> list[dict]:
        if self.started:
            return []
        self.started = True
        return [
            {"type": "response.created", "response": self._response("in_progress")},
            {"type": "response.in_progress", "response": self._response("in_progress")},
        ]

    def stream_chunk(self, chunk: dict) -> bytes:
        if not isinstance(chunk, dict):
            return b""
        return self._encode(self._start() + self._observe(chunk))

    def stream_end(self) -> bytes:
        events = self._start() + self.items.close()
        response = self._final()
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return self._encode([*events, {"type": kind, "response": response}])

    def stream_error(self, status: int, message: str) -> bytes:
        events = self._start() + self.items.close()
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        failed: dict[str, Any] = {
            "type": "response.failed",
            "response": self._response("failed", {"code": code, "message": message}),
        }
        return self._encode([*events, failed])
