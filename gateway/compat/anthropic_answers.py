"""Gemini answers as Anthropic Messages: one whole ``Message``, or its stream of events.

Both come from one walk over Gemini's parts (``_Blocks``), so a streamed
answer accumulates into exactly the message the unary call returns.

What Gemini sends that has no place in a Message, and what becomes of it:

- ``thoughtSignature`` on a part that is not a thought (a function call, a
  text): carried by an empty ``thinking`` block placed just before that
  part's block (``{"thinking": "", "signature": ...}``); on the next turn
  ``anthropic_messages`` puts it back on the part that follows, so Gemini
  gets its signature where it left it.
- ``inlineData`` / ``fileData`` in the answer (generated images, audio): a
  Message has no image output; dropped.
- ``executableCode`` / ``codeExecutionResult``: rendered as fenced Markdown
  in a text block.
- ``safetyRatings``, ``citationMetadata``, ``groundingMetadata``,
  ``avgLogprobs``, ``logprobsResult``, ``modelVersion``, ``responseId``,
  ``createTime``, ``urlContextMetadata`` and per-modality token details:
  no place in a Message; dropped.
- ``usageMetadata.thoughtsTokenCount`` is added to ``output_tokens`` (both
  bill thinking as output); ``toolUsePromptTokenCount`` to ``input_tokens``;
  ``cachedContentTokenCount`` is ``cache_read_input_tokens`` and is taken out
  of ``input_tokens``, as Anthropic counts them apart.
- ``finishReason``: STOP is ``end_turn`` (``tool_use`` when the answer calls
  a function), MAX_TOKENS ``max_tokens``, the policy reasons (SAFETY,
  RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY) and a
  blocked prompt ``refusal``; everything else (MALFORMED_FUNCTION_CALL,
  OTHER, LANGUAGE, ...) ``end_turn``. Gemini reports a matched stop sequence
  as a plain STOP without saying which, so ``stop_sequence`` is never set:
  ``end_turn`` it is, with ``stop_sequence: null``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from gateway.compat import gemini_answer as gemini
from gateway.compat.anthropic_errors import error_body
from gateway.compat.body_fields import compact_json
from gateway.compat.surface import UnaryTranslator

EMPTY_THINKING = {"type": "thinking", "thinking": "", "signature": ""}
TOOL_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def random_id(prefix: str) -> str:
    return f"{prefix}_01{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}"


def stop_reason(finish: str | None, called_tool: bool, blocked: bool) -> str:
    if blocked or finish in gemini.REFUSALS:
        return "refusal"
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if called_tool:
        return "tool_use"
    return "end_turn"


def usage_body(usage: gemini.Usage | None) -> dict:
    usage = usage or gemini.Usage()
    return {
        "input_tokens": usage.uncached_input,
        "output_tokens": usage.output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached,
    }


def sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {compact_json(event)}\n\n".encode()


class _Blocks:
    """Gemini parts, in arrival order, as Anthropic content-block events."""

    def __init__(self, new_id: Callable[[str], str]) -> None:
        self.new_id = new_id
        self.index = -1
        self.open: str | None = None  # "text" or "thinking" while a block can still grow
        self.called_tool = False

    def _start(self, block: dict) -> list[dict]:
        events = self.close()
        self.index += 1
        self.open = block["type"] if block["type"] in ("text", "thinking") else None
        events.append({"type": "content_block_start", "index": self.index, "content_block": dict(block)})
        return events

    def _delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def close(self) -> list[dict]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _carrier(self, signature: str) -> list[dict]:
        events = self._start(EMPTY_THINKING)
        events.append(self._delta({"type": "signature_delta", "signature": signature}))
        return events + self.close()

    def part(self, part: dict) -> list[dict]:
        signature = gemini.signature_of(part)
        if gemini.is_thought(part):
            events = [] if self.open == "thinking" else self._start(EMPTY_THINKING)
            text = gemini.text_of(part)
            if text:
                events.append(self._delta({"type": "thinking_delta", "thinking": text}))
            if signature:
                # A signature ends a thinking block in Anthropic's streams.
                events.append(self._delta({"type": "signature_delta", "signature": signature}))
                events += self.close()
            return events
        events = self._carrier(signature) if signature else []
        call = gemini.function_call(part)
        if call is not None:
            self.called_tool = True
            call_id = call.get("id")
            tool_id = call_id if isinstance(call_id, str) and TOOL_ID.match(call_id) else self.new_id("toolu")
            events += self._start({"type": "tool_use", "id": tool_id, "name": call["name"], "input": {}})
            arguments = compact_json(gemini.function_args(call))
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
            events.append({"type": "content_block_stop", "index": self.index})
            return events
        text = gemini.text_of(part)
        if text is None:
            text = gemini.code_text(part)
        if text:
            if self.open != "text":
                events += self._start({"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": text}))
        return events


def _apply(content: list[dict], event: dict) -> None:
    """Accumulates one content-block event into a message's content, as Anthropic's SDKs do."""
    if event["type"] == "content_block_start":
        content.append(dict(event["content_block"]))
        return
    if event["type"] != "content_block_delta":
        return
    block, delta = content[event["index"]], event["delta"]
    if delta["type"] == "text_delta":
        block["text"] += delta["text"]
    elif delta["type"] == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif delta["type"] == "signature_delta":
        block["signature"] = delta["signature"]
    elif delta["type"] == "input_json_delta":
        block["input"] = json.loads(delta["partial_json"])


class MessageTranslator:
    """One call's answer, as a Message (``unary``) or as the events of its stream."""

    def __init__(self, model: str, new_id: Callable[[str], str] = random_id) -> None:
        self.model = model
        self.message_id = new_id("msg")
        self.blocks = _Blocks(new_id)
        self.started = False
        self.usage: gemini.Usage | None = None
        self.finish: str | None = None
        self.blocked = False

    def _message(self, content: list[dict], stop: str | None) -> dict:
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage_body(self.usage),
        }

    def _observe(self, answer: dict) -> list[dict]:
        self.usage = gemini.Usage.of(answer) or self.usage
        self.finish = gemini.finish_reason(answer) or self.finish
        self.blocked = self.blocked or gemini.block_reason(answer) is not None
        events: list[dict] = []
        for part in gemini.parts(answer):
            events += self.blocks.part(part)
        return events

    def _stop(self) -> str:
        return stop_reason(self.finish, self.blocks.called_tool, self.blocked)

    def unary(self, answer: dict) -> dict:
        content: list[dict] = []
        for event in self._observe(answer if isinstance(answer, dict) else {}):
            _apply(content, event)
        return self._message(content, self._stop())

    def _start(self) -> bytes:
        self.started = True
        message = self._message([], None)
        message["usage"]["output_tokens"] = 0
        return sse({"type": "message_start", "message": message}) + sse({"type": "ping"})

    def stream_chunk(self, chunk: dict) -> bytes:
        if not isinstance(chunk, dict):
            return b""
        # Usage arrives with the first chunk; message_start carries its input count, as Anthropic's does.
        usage = gemini.Usage.of(chunk)
        if usage is not None:
            self.usage = usage
        head = b"" if self.started else self._start()
        return head + b"".join(sse(event) for event in self._observe(chunk))

    def stream_end(self) -> bytes:
        head = b"" if self.started else self._start()
        events = self.blocks.close()
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop(), "stop_sequence": None},
                "usage": usage_body(self.usage),
            }
        )
        events.append({"type": "message_stop"})
        return head + b"".join(sse(event) for event in events)

    def stream_error(self, status: int, message: str) -> bytes:
        return sse(error_body(status, message))


class TokenCount(UnaryTranslator):
    """``countTokens`` -> ``{"input_tokens"}``."""

    def unary(self, answer: dict) -> dict:
        total = answer.get("totalTokens") if isinstance(answer, dict) else None
        return {"input_tokens": total if isinstance(total, int) and not isinstance(total, bool) else 0}


def model_list(gemini_models: dict, aliases: Mapping[str, str] | None = None) -> dict:
    """Gemini's ``models.list`` answer in Anthropic's shape (``GET /v1/models`` with ``anthropic-version``).

    Only models that generate content are listed; each alias a client may name
    (``claude-sonnet-4-5`` -> a Gemini model listed here) is listed too, under
    its own id. Gemini gives no release dates: ``created_at`` is the epoch, as
    Anthropic's own reference allows for unknown dates.
    """
    listed: list[dict] = []
    by_id: dict[str, dict] = {}
    models = gemini_models.get("models") if isinstance(gemini_models, dict) else None
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            continue
        methods = model.get("supportedGenerationMethods")
        if isinstance(methods, list) and "generateContent" not in methods:
            continue
        model_id = model["name"].removeprefix("models/")
        info: dict[str, Any] = {
            "type": "model",
            "id": model_id,
            "display_name": model.get("displayName") if isinstance(model.get("displayName"), str) else model_id,
            "created_at": "1970-01-01T00:00:00Z",
            "lifecycle": "active",
        }
        for source, target in (("inputTokenLimit", "max_input_tokens"), ("outputTokenLimit", "max_tokens")):
            if isinstance(model.get(source), int) and not isinstance(model.get(source), bool):
                info[target] = model[source]
        listed.append(info)
        by_id[model_id] = info
    for alias, target in (aliases or {}).items():
        if target in by_id and alias not in by_id:
            listed.append({**by_id[target], "id": alias, "display_name": f"{alias} ({target})"})
    return {
        "data": listed,
        "has_more": False,
        "first_id": listed[0]["id"] if listed else None,
        "last_id": listed[-1]["id"] if listed else None,
    }


class ModelListTranslator(UnaryTranslator):
    """``models.list`` -> Anthropic's model list."""

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        self.aliases = aliases or {}

    def unary(self, answer: dict) -> dict:
        return model_list(answer, self.aliases)
