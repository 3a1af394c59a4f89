"""OpenAI Chat Completions <-> Gemini generateContent: pure translation, no I/O.

Request (``POST .../chat/completions``) -> Gemini:
- ``system`` and ``developer`` messages -> ``systemInstruction`` (in order, wherever they stand);
  ``user`` -> role ``user``; ``assistant`` -> role ``model`` (text, and ``tool_calls`` as
  ``functionCall`` parts); consecutive ``tool`` messages -> one ``user`` content of
  ``functionResponse`` parts, named by the call they answer (``tool_call_id``).
- Content parts: ``text``; ``image_url`` with a ``data:`` URL -> ``inlineData``; with an
  ``http(s)`` URL -> ``fileData`` (``fileUri`` the URL, ``mimeType`` from its extension, else
  ``image/jpeg``): the Gemini API fetches public and signed HTTPS URLs given as ``fileData``
  itself, and the gateway fetches nothing, so no client can make it reach an address of its
  network (nor hold a relay slot while a slow server trickles bytes). ``input_audio`` -> ``inlineData``
  (audio/wav or audio/mp3); ``file`` with ``file_data`` (a data URL) -> ``inlineData``.
- ``tools`` (functions) -> ``functionDeclarations`` with ``parametersJsonSchema`` (full JSON
  Schema, as OpenAI clients write it); ``tool_choice`` none/auto/required/{function} ->
  ``functionCallingConfig`` NONE/AUTO/ANY/ANY with ``allowedFunctionNames``.
- ``response_format`` json_object -> ``responseMimeType: application/json``; json_schema ->
  also ``responseJsonSchema``. ``reasoning_effort`` -> ``thinkingConfig.thinkingBudget``
  (none 0, minimal 512, low 1024, medium 8192, high 24576, as Google's own compatibility layer).
- ``max_completion_tokens`` (or ``max_tokens``) -> ``maxOutputTokens``; ``temperature``,
  ``top_p``, ``stop``, ``n``, ``seed``, ``presence_penalty``, ``frequency_penalty``,
  ``logprobs``/``top_logprobs`` -> their ``generationConfig`` fields.
- ``extra_body.google`` (sent as ``google`` or ``extra_body.google``): ``thinking_config``
  into ``generationConfig.thinkingConfig``, ``generation_config`` merged into
  ``generationConfig``, ``cached_content`` -> ``cachedContent``, ``safety_settings`` ->
  ``safetySettings``; any other key is passed to the top level of the Gemini body as given.
- Accepted and not sent (Gemini has no such thing): ``user``, ``metadata``, ``store``,
  ``service_tier``, ``logit_bias``, ``parallel_tool_calls`` (Gemini decides),
  ``prediction``, ``modalities``, ``audio``, ``web_search_options``, ``verbosity``,
  ``prompt_cache_key``, ``safety_identifier``, a message's ``name``.

Gemini answer -> OpenAI (whole, or as ``chat.completion.chunk`` events):
- text parts -> ``content``; thought parts (``thought: true``) -> ``reasoning_content`` (not
  in OpenAI's schema; Open WebUI, LobeChat and others read it); ``functionCall`` ->
  ``tool_calls`` (arguments as a JSON string, the part's ``thoughtSignature`` in
  ``extra_content.google.thought_signature``, as Google's layer does, so it survives the
  round trip when the client sends the call back; a client that drops it gets Google's
  ``skip_thought_signature_validator`` on the turn's first call, so Gemini 3 does not refuse
  the turn); ``finishReason`` STOP -> stop (tool_calls
  when calls were made), MAX_TOKENS -> length, the safety family -> content_filter;
  ``usageMetadata`` -> ``usage`` (prompt, completion = candidates + thoughts, reasoning
  tokens, cached tokens). ``responseId`` names the completion (``chatcmpl-...``).
- Gemini fields with no place in OpenAI's format, not relayed: ``safetyRatings``,
  ``citationMetadata``, ``groundingMetadata``, ``urlContextMetadata``, ``avgLogprobs``,
  ``logprobsResult`` (not mapped to OpenAI's logprobs), ``promptFeedback`` (except that a
  blocked prompt answers one choice with ``finish_reason: content_filter``), a thought
  part's ``thoughtSignature`` on text, ``inlineData`` / ``executableCode`` /
  ``codeExecutionResult`` parts of the answer, ``modelVersion`` (the answer names the
  model the client asked for), per-modality token details, and fields Google adds later.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.compat.surface import GeminiCall, SurfaceError, kind_of

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}
IGNORED = frozenset(
    {
        "user",
        "metadata",
        "store",
        "service_tier",
        "logit_bias",
        "parallel_tool_calls",
        "prediction",
        "modalities",
        "audio",
        "web_search_options",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}
# Google's documented value for a function call whose signature was lost (or that Gemini never made).
UNSIGNED_CALL = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5
MAX_CANDIDATES = 8

Ids = Callable[[], str]


def random_id() -> str:
    return uuid.uuid4().hex[:24]


# ---- the request -------------------------------------------------------------------------------


def _bad(message: str, param: str | None = None) -> SurfaceError:
    return SurfaceError(400, message, param=param)


def _expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    # bool is an int in Python; JSON's true is not a number.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise _bad(f"Invalid type for '{param}': expected {what}.", param)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    _expect(value, (int, float), name, "a number")
    if not low <= value <= high:
        raise _bad(f"Invalid '{name}': {value} is outside [{low}, {high}].", name)
    return value


def _integer(body: dict, name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    _expect(value, int, name, "an integer")
    if not low <= value <= high:
        raise _bad(f"Invalid '{name}': {value} is outside [{low}, {high}].", name)
    return value


def _data_url(url: str, param: str) -> dict:
    header, comma, data = url.partition(",")
    if not comma or ";base64" not in header:
        raise _bad(f"Invalid data URL at '{param}': expected data:<mime type>;base64,<data>.", param)
    mime = header[len("data:") :].split(";", 1)[0].strip() or "application/octet-stream"
    return {"inlineData": {"mimeType": mime, "data": data.strip()}}


def _image_part(image: Any, param: str) -> dict:
    if isinstance(image, str):  # some clients send the URL bare
        image = {"url": image}
    _expect(image, dict, param, "an object with 'url'")
    url = _expect(image.get("url"), str, f"{param}.url", "a string")
    if url.startswith("data:"):
        return _data_url(url, f"{param}.url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(f"Invalid image URL at '{param}.url': use an https URL or a data: URL.", f"{param}.url")
    extension = parts.path.rsplit(".", 1)[-1].lower() if "." in parts.path else ""
    return {"fileData": {"mimeType": _IMAGE_TYPES.get(extension, "image/jpeg"), "fileUri": url}}


def _content_part(part: Any, param: str) -> dict:
    if isinstance(part, str):
        return {"text": part}
    _expect(part, dict, param, "a content part object")
    kind = part.get("type")
    if kind in ("text", "input_text", "refusal"):
        return {"text": _expect(part.get(kind if kind == "refusal" else "text"), str, f"{param}.text", "a string")}
    if kind == "image_url":
        return _image_part(part.get("image_url"), f"{param}.image_url")
    if kind == "input_audio":
        audio = _expect(part.get("input_audio"), dict, f"{param}.input_audio", "an object")
        data = _expect(audio.get("data"), str, f"{param}.input_audio.data", "a base64 string")
        audio_format = _expect(audio.get("format", "wav"), str, f"{param}.input_audio.format", "wav or mp3")
        return {"inlineData": {"mimeType": f"audio/{audio_format}", "data": data}}
    if kind == "file":
        file = _expect(part.get("file"), dict, f"{param}.file", "an object")
        data = file.get("file_data")
        if not isinstance(data, str):
            raise _bad(f"'{param}.file' needs 'file_data' (a data: URL); file ids are not served here.", param)
        return _data_url(data, f"{param}.file.file_data")
    raise _bad(f"Unsupported content part type {str(kind)[:40]!r} at '{param}'.", f"{param}.type")


def _parts(content: Any, param: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    _expect(content, list, param, "a string or an array of content parts")
    return [_content_part(part, f"{param}[{index}]") for index, part in enumerate(content)]


def _arguments(text: Any, param: str) -> dict:
    if isinstance(text, dict):
        return text
    _expect(text, str, param, "a JSON string")
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise _bad(f"Invalid '{param}': the arguments are not valid JSON.", param) from None
    if not isinstance(value, dict):
        raise _bad(f"Invalid '{param}': the arguments must be a JSON object.", param)
    return value


def _tool_call_part(call: Any, param: str, names: dict[str, str]) -> dict:
    _expect(call, dict, param, "a tool call object")
    function = _expect(call.get("function"), dict, f"{param}.function", "an object")
    name = _expect(function.get("name"), str, f"{param}.function.name", "a string")
    part: dict[str, Any] = {
        "functionCall": {"name": name, "args": _arguments(function.get("arguments"), f"{param}.function.arguments")}
    }
    call_id = call.get("id")
    if isinstance(call_id, str):
        names[call_id] = name
    google = (call.get("extra_content") or {}).get("google") if isinstance(call.get("extra_content"), dict) else None
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        part["thoughtSignature"] = google["thought_signature"]
    return part


def _tool_result_part(message: dict, param: str, names: dict[str, str]) -> dict:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        name = message.get("name") if isinstance(message.get("name"), str) else None
    if name is None:
        raise _bad(
            f"'{param}.tool_call_id' names no tool call of an earlier assistant message.", f"{param}.tool_call_id"
        )
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    text: str = _expect(content, str, f"{param}.content", "a string")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = content
    response = parsed if isinstance(parsed, dict) else {"result": parsed}
    return {"functionResponse": {"name": name, "response": response}}


def _contents(messages: Any) -> tuple[list[dict], list[dict]]:
    """(system parts, contents) from OpenAI's messages."""
    _expect(messages, list, "messages", "an array of messages")
    if not messages:
        raise _bad("'messages' must hold at least one message.", "messages")
    system: list[dict] = []
    contents: list[dict] = []
    names: dict[str, str] = {}  # tool_call_id -> function name
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        _expect(message, dict, param, "a message object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), f"{param}.content"))
        elif role == "user":
            parts = _parts(message.get("content"), f"{param}.content")
            contents.append({"role": "user", "parts": parts or [{"text": ""}]})
        elif role == "assistant":
            parts = _parts(message.get("content"), f"{param}.content")
            calls = message.get("tool_calls") or []
            _expect(calls, list, f"{param}.tool_calls", "an array")
            call_parts = [_tool_call_part(call, f"{param}.tool_calls[{n}]", names) for n, call in enumerate(calls)]
            if call_parts and "thoughtSignature" not in call_parts[0]:
                # Gemini 3 refuses a turn whose first call carries no signature; most OpenAI clients drop
                # extra_content, so Google's documented stand-in takes its place.
                call_parts[0]["thoughtSignature"] = UNSIGNED_CALL
            parts += call_parts
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        elif role in ("tool", "function"):
            part = _tool_result_part(message, param, names)
            previous = contents[-1] if contents else None
            if previous and previous["role"] == "user" and all("functionResponse" in p for p in previous["parts"]):
                previous["parts"].append(part)  # Gemini wants a turn's results together
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise _bad(f"Invalid '{param}.role': {str(role)[:40]!r}.", f"{param}.role")
    if not contents:
        raise _bad("'messages' holds no user message.", "messages")
    return system, contents


def _tools(tools: Any) -> list[dict]:
    _expect(tools, list, "tools", "an array")
    declarations = []
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        _expect(tool, dict, param, "a tool object")
        if tool.get("type", "function") != "function":
            raise _bad(f"Unsupported tool type {str(tool.get('type'))[:40]!r} at '{param}'.", f"{param}.type")
        function = _expect(tool.get("function"), dict, f"{param}.function", "an object")
        declaration: dict[str, Any] = {"name": _expect(function.get("name"), str, f"{param}.function.name", "a string")}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            declaration["parametersJsonSchema"] = _expect(
                function["parameters"], dict, f"{param}.function.parameters", "a JSON Schema object"
            )
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict:
    if isinstance(choice, str):
        modes = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
        if choice not in modes:
            raise _bad(
                f"Invalid 'tool_choice': {choice[:40]!r}; use none, auto, required or a function.", "tool_choice"
            )
        return {"functionCallingConfig": {"mode": modes[choice]}}
    _expect(choice, dict, "tool_choice", "a string or an object")
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise _bad("'tool_choice' names no function: expected {type: function, function: {name}}.", "tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _response_format(value: Any) -> dict:
    _expect(value, dict, "response_format", "an object")
    kind = value.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = _expect(value.get("json_schema"), dict, "response_format.json_schema", "an object")
        schema = _expect(spec.get("schema"), dict, "response_format.json_schema.schema", "a JSON Schema object")
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise _bad(f"Invalid 'response_format.type': {str(kind)[:40]!r}.", "response_format.type")


def _generation_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    for ours, theirs, low, high in (
        ("temperature", "temperature", 0, 2),
        ("topP", "top_p", 0, 1),
        ("presencePenalty", "presence_penalty", -2, 2),
        ("frequencyPenalty", "frequency_penalty", -2, 2),
    ):
        if (value := _number(body, theirs, low, high)) is not None:
            config[ours] = value
    tokens = _integer(body, "max_completion_tokens", 1, 2**31 - 1)
    if tokens is None:
        tokens = _integer(body, "max_tokens", 1, 2**31 - 1)
    if tokens is not None:
        config["maxOutputTokens"] = tokens
    if (n := _integer(body, "n", 1, MAX_CANDIDATES)) is not None and n != 1:
        config["candidateCount"] = n
    if (seed := _integer(body, "seed", -(2**63), 2**63 - 1)) is not None:
        config["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("Invalid 'stop': expected a string or an array of strings.", "stop")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise _bad(f"Invalid 'stop': at most {MAX_STOP_SEQUENCES} sequences.", "stop")
        if stops:
            config["stopSequences"] = stops
    if body.get("logprobs") is True:
        config["responseLogprobs"] = True
        if (top := _integer(body, "top_logprobs", 0, 20)) is not None:
            config["logprobs"] = top
    if body.get("response_format") is not None:
        config.update(_response_format(body["response_format"]))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise _bad(f"Invalid 'reasoning_effort': use one of {', '.join(THINKING_BUDGETS)}.", "reasoning_effort")
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    return config


def _google_extras(body: dict) -> dict:
    extras = body.get("google")
    nested = body.get("extra_body")
    if extras is None and isinstance(nested, dict):
        extras = nested.get("google")
    if extras is None:
        return {}
    return _expect(extras, dict, "extra_body.google", "an object")


def gemini_request(body: dict) -> dict:
    """The Gemini generateContent body for an OpenAI chat completions body; SurfaceError when it is unfit."""
    system, contents = _contents(body.get("messages"))
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    if body.get("tools") is not None:
        if tools := _tools(body["tools"]):
            request["tools"] = tools
    if body.get("tool_choice") is not None and "tools" in request:
        request["toolConfig"] = _tool_config(body["tool_choice"])
    config = _generation_config(body)
    for name, value in _google_extras(body).items():
        if name in ("thinking_config", "thinkingConfig"):
            config["thinkingConfig"] = _expect(value, dict, f"extra_body.google.{name}", "an object")
        elif name in ("generation_config", "generationConfig"):
            config.update(_expect(value, dict, f"extra_body.google.{name}", "an object"))
        elif name in ("cached_content", "cachedContent"):
            request["cachedContent"] = value
        elif name in ("safety_settings", "safetySettings"):
            request["safetySettings"] = value
        else:
            request[name] = value
    if config:
        request["generationConfig"] = config
    return request


# ---- the answer --------------------------------------------------------------------------------


def openai_usage(metadata: Mapping[str, Any]) -> dict:
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(metadata.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


@dataclass
class ChatTranslator:
    """One call's answer, whole or streamed; ``ids`` and ``clock`` are injected so golden tests are exact."""

    model: str  # the name the client asked for, which the answer repeats
    include_usage: bool = False
    ids: Ids = random_id
    clock: Callable[[], float] = time.time
    _completion_id: str = ""
    _created: int = 0
    _started: set[int] = field(default_factory=set)  # choices whose role delta was sent
    _calls_sent: dict[int, int] = field(default_factory=dict)  # choice -> tool calls so far
    _usage: dict = field(default_factory=dict)

    def _identity(self, answer: dict) -> tuple[str, int]:
        if not self._completion_id:
            response_id = answer.get("responseId")
            suffix = response_id if isinstance(response_id, str) and response_id.isascii() else self.ids()
            self._completion_id = f"chatcmpl-{suffix[:64]}"
            self._created = int(self.clock())
        return self._completion_id, self._created

    def _tool_call(self, call: dict, signature: Any) -> dict:
        call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{self.ids()}"
        tool_call: dict[str, Any] = {
            "id": call_id,
            "type": "function",
            "function": {"name": str(call.get("name", "")), "arguments": json.dumps(call.get("args") or {})},
        }
        if isinstance(signature, str):
            tool_call["extra_content"] = {"google": {"thought_signature": signature}}
        return tool_call

    def _read(self, candidate: dict) -> tuple[str, str, list[dict]]:
        """(text, thoughts, tool calls) of a candidate's parts."""
        text: list[str] = []
        thoughts: list[str] = []
        calls: list[dict] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                calls.append(self._tool_call(part["functionCall"], part.get("thoughtSignature")))
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") else text).append(part["text"])
        return "".join(text), "".join(thoughts), calls

    @staticmethod
    def _finish_reason(candidate: dict, made_calls: bool) -> str | None:
        reason = candidate.get("finishReason")
        if not reason:
            return None
        if made_calls and reason == "STOP":
            return "tool_calls"
        return FINISH_REASONS.get(reason, "stop")

    @staticmethod
    def _candidates(answer: dict) -> list[dict]:
        candidates = answer.get("candidates")
        found = [c for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else []
        if not found and isinstance(answer.get("promptFeedback"), dict) and answer["promptFeedback"].get("blockReason"):
            return [{"index": 0, "finishReason": "SAFETY"}]
        return found

    def unary(self, answer: dict) -> dict:
        completion_id, created = self._identity(answer)
        choices = []
        for position, candidate in enumerate(self._candidates(answer)):
            text, thoughts, calls = self._read(candidate)
            message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
            if thoughts:
                message["reasoning_content"] = thoughts
            if calls:
                message["tool_calls"] = calls
            choices.append(
                {
                    "index": _index(candidate, position),
                    "message": message,
                    "finish_reason": self._finish_reason(candidate, bool(calls)) or "stop",
                    "logprobs": None,
                }
            )
        metadata = answer.get("usageMetadata")
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": choices,
            "usage": openai_usage(metadata if isinstance(metadata, dict) else {}),
        }

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._completion_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def stream_chunk(self, chunk: dict) -> bytes:
        self._identity(chunk)
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage = chunk["usageMetadata"]  # cumulative: the last one counts
        out = []
        for position, candidate in enumerate(self._candidates(chunk)):
            index = _index(candidate, position)
            text, thoughts, calls = self._read(candidate)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
                delta["content"] = ""
            if text:
                delta["content"] = text
            if thoughts:
                delta["reasoning_content"] = thoughts
            if calls:
                first = self._calls_sent.get(index, 0)
                delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
                self._calls_sent[index] = first + len(calls)
            finish = self._finish_reason(candidate, bool(self._calls_sent.get(index)))
            if delta and finish:
                out.append(self._chunk([{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}]))
                delta = {}
            if delta or finish:
                out.append(self._chunk([{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]))
        return b"".join(out)

    def stream_end(self) -> bytes:
        tail = b""
        if self.include_usage:
            tail = self._chunk([], openai_usage(self._usage))
        return tail + b"data: [DONE]\n\n"

    def stream_error(self, status: int, message: str) -> bytes:
        body = error_body(status, message, kind_of(status))
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _index(candidate: dict, position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 64 else position


# ---- errors ------------------------------------------------------------------------------------

# The relay side's kinds -> OpenAI's (type, code).
_OPENAI_ERRORS = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("permission_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "service_unavailable"),
}


def error_body(status: int, message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    error_type, default_code = _OPENAI_ERRORS.get(kind, (kind, None))
    return {"error": {"message": message, "type": error_type, "param": param, "code": code or default_code}}


# ---- the surface -------------------------------------------------------------------------------


@dataclass
class OpenAIChat:
    name: str = "openai.chat"
    ids: Ids = random_id
    clock: Callable[[], float] = time.time

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("You must provide a model parameter.", "model")
        stream = body.get("stream", False)
        _expect(stream, bool, "stream", "a boolean")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        translator = ChatTranslator(model=model, include_usage=stream and include_usage, ids=self.ids, clock=self.clock)
        action = "streamGenerateContent" if stream else "generateContent"
        return GeminiCall(model=model, action=action, body=gemini_request(body), translator=translator)

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)
