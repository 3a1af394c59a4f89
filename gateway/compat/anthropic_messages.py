"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``) as Gemini calls.

The request side lives here; ``anthropic_answers`` turns Gemini's answers
into Messages and stream events.

What an Anthropic request says that Gemini has no place for, and what
happens to it:

- ``metadata.user_id``, ``service_tier``, ``speed``, ``container``,
  ``inference_geo``, ``cache_control`` (anywhere), ``context_management``,
  ``mcp_servers`` and other top-level fields: accepted and ignored, as
  Claude Code sends several of them on every call.
- ``tool_choice.disable_parallel_tool_use``: Gemini cannot forbid parallel
  calls; ignored.
- ``redacted_thinking`` blocks come only from Anthropic's own models: skipped.
- ``tool_use``/``tool_result`` ids: Gemini pairs calls and results by order
  and name; the ids stay on the Anthropic side (``tool_result`` is matched to
  its ``tool_use`` by id to recover the function name Gemini needs).
- Server tools (``web_search_*``, ``bash_*``, ``text_editor_*``, ...) are
  refused with a 400: nothing here would run them.
- ``thinking.display``: Gemini either returns thought summaries or not.
- Count tokens sends Gemini ``{"contents"}`` only, because
  ``generateContentRequest`` must name the resolved Gemini model, which the
  relay side only knows later: the system prompt and the tool declarations
  are counted as text at the head of the conversation, a close estimate.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping
from typing import Any

from gateway.compat import anthropic_answers
from gateway.compat.anthropic_errors import error_body
from gateway.compat.body_fields import (
    array,
    boolean,
    compact_json,
    integer,
    mapping,
    number,
    refuse,
    required,
    string,
)
from gateway.compat.signatures import sign_unsigned_calls
from gateway.compat.surface import GeminiCall

# Anthropic's effort levels as Gemini thinking budgets (tokens); "max" is capped at what every 2.5 model takes.
EFFORT_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576, "max": 24576}

TOOL_CHOICE_MODES = {"auto": "AUTO", "any": "ANY", "tool": "ANY", "none": "NONE"}


# ---- content blocks -> Gemini parts


class _Conversation:
    """Translates messages in order, remembering tool_use ids so that results find their function's name."""

    def __init__(self) -> None:
        self.tool_names: dict[str, str] = {}

    def contents(self, messages: list) -> list[dict]:
        contents: list[dict] = []
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            message = mapping(message, where)
            role = required(message, "role", f"{where}.")
            if role not in ("user", "assistant"):
                raise refuse(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
            parts = self.parts(required(message, "content", f"{where}."), f"{where}.content")
            if not parts:
                # Gemini refuses a content without parts; an empty turn carries nothing.
                continue
            gemini_role = "model" if role == "assistant" else "user"
            if contents and contents[-1]["role"] == gemini_role:
                # Anthropic allows consecutive turns of one role; Gemini wants them merged.
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": gemini_role, "parts": parts})
        if not contents:
            raise refuse("messages: at least one message with content is required", "messages")
        return contents

    def parts(self, content: Any, where: str) -> list[dict]:
        if isinstance(content, str):
            return [{"text": content}] if content else []
        blocks = array(content, where)
        parts: list[dict] = []
        carried_signature: str | None = None
        for index, block in enumerate(blocks):
            name = f"{where}.{index}"
            block = mapping(block, name)
            kind = required(block, "type", f"{name}.")
            if kind == "thinking":
                signature = block.get("signature")
                signature = string(signature, f"{name}.signature") if signature is not None else ""
                thinking = string(required(block, "thinking", f"{name}."), f"{name}.thinking")
                if thinking:
                    part: dict = {"text": thinking, "thought": True}
                    if signature:
                        part["thoughtSignature"] = signature
                    parts.append(part)
                elif signature:
                    # An empty thinking block carries the signature of the part that follows (see anthropic_answers).
                    carried_signature = signature
                continue
            if kind == "redacted_thinking":
                continue
            new_parts = self.block(kind, block, name)
            if carried_signature and new_parts:
                new_parts[0]["thoughtSignature"] = carried_signature
                carried_signature = None
            parts.extend(new_parts)
        if carried_signature:
            # Nothing followed: Gemini had sent the signature on an empty part of its own, as it does last.
            parts.append({"text": "", "thoughtSignature": carried_signature})
        return parts

    def block(self, kind: Any, block: dict, name: str) -> list[dict]:
        if kind == "text":
            text = string(required(block, "text", f"{name}."), f"{name}.text")
            return [{"text": text}] if text else []
        if kind in ("image", "document"):
            return [source_part(mapping(required(block, "source", f"{name}."), f"{name}.source"), f"{name}.source")]
        if kind == "tool_use":
            tool_id = string(required(block, "id", f"{name}."), f"{name}.id", allow_empty=False)
            tool_name = string(required(block, "name", f"{name}."), f"{name}.name", allow_empty=False)
            self.tool_names[tool_id] = tool_name
            args = mapping(block.get("input", {}), f"{name}.input")
            return [{"functionCall": {"name": tool_name, "args": args}}]
        if kind == "tool_result":
            return self.tool_result(block, name)
        raise refuse(f"{name}.type: content blocks of type {kind!r} are not supported here", f"{name}.type")

    def tool_result(self, block: dict, name: str) -> list[dict]:
        tool_id = string(required(block, "tool_use_id", f"{name}."), f"{name}.tool_use_id")
        if tool_id not in self.tool_names:
            raise refuse(
                f"{name}.tool_use_id: unexpected `tool_use_id` found in `tool_result` blocks: {tool_id}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in an earlier message.",
                f"{name}.tool_use_id",
            )
        is_error = block.get("is_error", False)
        is_error = boolean(is_error, f"{name}.is_error") if is_error is not None else False
        content = block.get("content", "")
        texts: list[str] = []
        media: list[dict] = []
        if isinstance(content, str):
            texts.append(content)
        elif content is not None:
            for index, inner in enumerate(array(content, f"{name}.content")):
                inner_name = f"{name}.content.{index}"
                inner = mapping(inner, inner_name)
                inner_kind = required(inner, "type", f"{inner_name}.")
                if inner_kind == "text":
                    texts.append(string(required(inner, "text", f"{inner_name}."), f"{inner_name}.text"))
                elif inner_kind in ("image", "document"):
                    source = mapping(required(inner, "source", f"{inner_name}."), f"{inner_name}.source")
                    media.append(source_part(source, f"{inner_name}.source"))
                else:
                    raise refuse(f"{inner_name}.type: {inner_kind!r} is not supported in a tool_result", inner_name)
        response = {"error" if is_error else "content": "\n".join(texts)}
        # Gemini's functionResponse holds JSON only; images of a result follow it as parts of the same turn.
        return [{"functionResponse": {"name": self.tool_names[tool_id], "response": response}}, *media]


def source_part(source: dict, where: str) -> dict:
    kind = required(source, "type", f"{where}.")
    if kind == "base64":
        media_type = string(required(source, "media_type", f"{where}."), f"{where}.media_type", allow_empty=False)
        data = string(required(source, "data", f"{where}."), f"{where}.data", allow_empty=False)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if kind == "url":
        url = string(required(source, "url", f"{where}."), f"{where}.url", allow_empty=False)
        if not url.startswith(("https://", "http://")):
            raise refuse(f"{where}.url: only http(s) URLs are supported", f"{where}.url")
        # Gemini needs a media type with fileData; Anthropic's url source has none, so guess from the path.
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        return {"fileData": {"fileUri": url, "mimeType": guessed or "image/jpeg"}}
    if kind == "text":
        return {"text": string(required(source, "data", f"{where}."), f"{where}.data")}
    raise refuse(f"{where}.type: sources of type {kind!r} are not supported here", f"{where}.type")


# ---- the rest of the request


def system_instruction(system: Any) -> dict | None:
    if isinstance(system, str):
        return {"parts": [{"text": system}]} if system else None
    texts = []
    for index, block in enumerate(array(system, "system")):
        block = mapping(block, f"system.{index}")
        if block.get("type") != "text":
            raise refuse(f"system.{index}.type: Input should be 'text'", f"system.{index}.type")
        texts.append(string(required(block, "text", f"system.{index}."), f"system.{index}.text"))
    parts = [{"text": text} for text in texts if text]
    return {"parts": parts} if parts else None


def function_declarations(tools: Any) -> list[dict]:
    declarations = []
    for index, tool in enumerate(array(tools, "tools")):
        where = f"tools.{index}"
        tool = mapping(tool, where)
        if tool.get("type", "custom") not in ("custom", None):
            raise refuse(f"{where}.type: server tool {tool['type']!r} is not supported by this gateway", where)
        declaration: dict = {"name": string(required(tool, "name", f"{where}."), f"{where}.name", allow_empty=False)}
        if tool.get("description") is not None:
            declaration["description"] = string(tool["description"], f"{where}.description")
        # parametersJsonSchema takes JSON Schema as clients write it ($schema, additionalProperties, ...).
        schema = required(tool, "input_schema", f"{where}.")
        declaration["parametersJsonSchema"] = mapping(schema, f"{where}.input_schema")
        declarations.append(declaration)
    return declarations


def tool_config(choice: Any, declared: list[dict]) -> dict:
    choice = mapping(choice, "tool_choice")
    kind = required(choice, "type", "tool_choice.")
    if kind not in TOOL_CHOICE_MODES:
        raise refuse("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice.type")
    config: dict = {"mode": TOOL_CHOICE_MODES[kind]}
    if kind == "tool":
        name = string(required(choice, "name", "tool_choice."), "tool_choice.name", allow_empty=False)
        if name not in {d["name"] for d in declared}:
            raise refuse(f"tool_choice.name: no tool named {name!r} in tools", "tool_choice.name")
        config["allowedFunctionNames"] = [name]
    return {"functionCallingConfig": config}


def thinking_config(thinking: Any, effort: str | None) -> dict | None:
    thinking = mapping(thinking, "thinking")
    kind = required(thinking, "type", "thinking.")
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = integer(required(thinking, "budget_tokens", "thinking."), "thinking.budget_tokens", minimum=1)
        return {"thinkingBudget": budget, "includeThoughts": True}
    if kind == "adaptive":
        # -1 lets Gemini choose, as adaptive thinking does.
        return {"thinkingBudget": EFFORT_BUDGETS[effort] if effort else -1, "includeThoughts": True}
    raise refuse("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'", "thinking.type")


def generation_config(body: dict) -> dict:
    config: dict = {"maxOutputTokens": integer(required(body, "max_tokens"), "max_tokens", minimum=1)}
    if body.get("temperature") is not None:
        config["temperature"] = number(body["temperature"], "temperature", low=0, high=1)
    if body.get("top_p") is not None:
        config["topP"] = number(body["top_p"], "top_p", low=0, high=1)
    if body.get("top_k") is not None:
        config["topK"] = integer(body["top_k"], "top_k", minimum=1)
    if body.get("stop_sequences") is not None:
        stops = array(body["stop_sequences"], "stop_sequences")
        config["stopSequences"] = [string(s, f"stop_sequences.{i}", allow_empty=False) for i, s in enumerate(stops)]
    output = mapping(body.get("output_config") or {}, "output_config")
    effort = output.get("effort")
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise refuse("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'", "output_config")
    if output.get("format") is not None:
        form = mapping(output["format"], "output_config.format")
        if form.get("type") != "json_schema":
            raise refuse("output_config.format.type: Input should be 'json_schema'", "output_config.format.type")
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = mapping(required(form, "schema", "output_config.format."), "schema")
    if body.get("thinking") is not None:
        thinking = thinking_config(body["thinking"], effort)
        if thinking:
            config["thinkingConfig"] = thinking
    elif effort:
        config["thinkingConfig"] = {"thinkingBudget": EFFORT_BUDGETS[effort]}
    return config


def model_name(body: dict) -> str:
    return string(required(body, "model"), "model", allow_empty=False)


def gemini_request(body: dict) -> dict:
    """The generateContent body for a Messages request."""
    contents = _Conversation().contents(array(required(body, "messages"), "messages"))
    request: dict = {"contents": sign_unsigned_calls(contents)}
    if body.get("system") is not None:
        system = system_instruction(body["system"])
        if system:
            request["systemInstruction"] = system
    if body.get("tools") is not None:
        declarations = function_declarations(body["tools"])
        if declarations:
            request["tools"] = [{"functionDeclarations": declarations}]
        if body.get("tool_choice") is not None:
            request["toolConfig"] = tool_config(body["tool_choice"], declarations)
    elif body.get("tool_choice") is not None:
        mapping(body["tool_choice"], "tool_choice")
    request["generationConfig"] = generation_config(body)
    return request


def count_tokens_request(body: dict) -> dict:
    contents = _Conversation().contents(array(required(body, "messages"), "messages"))
    head: list[dict] = []
    if body.get("system") is not None:
        system = system_instruction(body["system"])
        head.extend(system["parts"] if system else [])
    if body.get("tools") is not None:
        declarations = function_declarations(body["tools"])
        head.extend({"text": compact_json(d)} for d in declarations)
    if head:
        contents.insert(0, {"role": "user", "parts": head})
    return {"contents": contents}


# ---- the surfaces the relay side serves


class AnthropicMessages:
    """``POST /v1/messages``."""

    name = "anthropic.messages"

    def __init__(self, new_id: Callable[[str], str] = anthropic_answers.random_id) -> None:
        self.new_id = new_id

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        if not isinstance(body, dict):
            raise refuse("The request body must be a JSON object")
        model = model_name(body)
        stream = body.get("stream", False)
        stream = boolean(stream, "stream") if stream is not None else False
        request = gemini_request(body)
        translator = anthropic_answers.MessageTranslator(model, self.new_id)
        return GeminiCall(model, "streamGenerateContent" if stream else "generateContent", request, translator)

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)


class AnthropicCountTokens:
    """``POST /v1/messages/count_tokens``: the same body as a message, less max_tokens."""

    name = "anthropic.messages"

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        if not isinstance(body, dict):
            raise refuse("The request body must be a JSON object")
        return GeminiCall(model_name(body), "countTokens", count_tokens_request(body), anthropic_answers.TokenCount())

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)


__all__ = ["AnthropicCountTokens", "AnthropicMessages", "error_body", "gemini_request"]
