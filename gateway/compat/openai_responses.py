"""OpenAI's Responses API (``POST {base}/responses``) as Gemini calls.

The request side lives here; ``responses_answers`` turns Gemini's answers
into a Response and its typed stream events; ``response_store`` keeps what
``previous_response_id`` needs.

What a Responses request says that Gemini has no place for, and what
happens to it:

- ``store: false`` means nothing is kept for ``previous_response_id``;
  ``include``, ``truncation``, ``parallel_tool_calls``, ``user``,
  ``safety_identifier``, ``service_tier``, ``prompt_cache_key``,
  ``metadata``, ``text.verbosity``, ``stream_options``, ``background``:
  accepted; the ones the Response echoes are echoed, none changes the call.
- Function ``strict``: Gemini has no strict mode; the schema is sent as is.
- ``call_id`` of function calls and outputs: Gemini pairs calls and results
  by order and name, so ids stay on this side (an output finds its
  function's name through its call_id, in this request or the stored one).
- ``input_image.detail``; ``input_file.filename``: no Gemini equivalent.
- Hosted tools (file_search, computer_use, code_interpreter, mcp,
  image_generation, local_shell, custom, ...) and ``item_reference`` /
  ``file_id`` inputs are refused with a 400: nothing here runs or holds them.
  ``web_search`` (and ``web_search_preview``) becomes Gemini's googleSearch,
  except with ``external_web_access: false`` (Codex CLI's default), which asks
  for no live search: Gemini has no cached-only search, so no tool is sent.
- ``namespace`` tools (Codex CLI groups some functions so): Gemini has no
  namespaces, so each function is declared as ``namespace.name`` (Gemini's
  names may hold dots) and its calls come back with ``namespace`` and
  ``name`` apart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.compat import responses_answers
from gateway.compat.body_fields import (
    array,
    boolean,
    integer,
    json_object_text,
    mapping,
    number,
    refuse,
    required,
    string,
)
from gateway.compat.response_store import BoundedResponseStore, ResponseStore, StoredResponse, default_store
from gateway.compat.signatures import sign_unsigned_calls
from gateway.compat.surface import GeminiCall, SurfaceError

# Reasoning effort as Gemini thinking budgets (tokens), the scale Google's own OpenAI-compatible endpoint uses.
EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# Who may continue a stored response when the relay side names no owner: the holder of the same key.
_OWNER_SALT = secrets.token_bytes(32)


def error_body(status: int, message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind or "invalid_request_error", "param": param, "code": code}}


@dataclass
class _Input:
    """Input items turned into Gemini contents, with what else they say on the way."""

    contents: list[dict] = field(default_factory=list)
    system: list[dict] = field(default_factory=list)
    call_names: dict[str, str] = field(default_factory=dict)

    def add(self, role: str, parts: list[dict]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})


def media_part(url: str, where: str, default_type: str) -> dict:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";", 1)[0] or default_type
        if ";base64" not in header or not data:
            raise refuse(f"{where}: a data URL must be base64-encoded", where)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"fileData": {"fileUri": url, "mimeType": default_type}}
    raise refuse(f"{where}: expected a data URL or an http(s) URL", where)


def content_parts(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for index, item in enumerate(array(content, where)):
        name = f"{where}[{index}]"
        item = mapping(item, name)
        kind = required(item, "type", f"{name}.")
        if kind in ("input_text", "output_text"):
            text = string(required(item, "text", f"{name}."), f"{name}.text")
            if text:
                parts.append({"text": text})
        elif kind == "refusal":
            parts.append({"text": string(required(item, "refusal", f"{name}."), f"{name}.refusal")})
        elif kind == "input_image":
            if item.get("image_url") is None:
                raise refuse(f"{name}: only image_url images are supported (not file_id)", f"{name}.image_url")
            parts.append(media_part(string(item["image_url"], f"{name}.image_url"), f"{name}.image_url", "image/jpeg"))
        elif kind == "input_file":
            if item.get("file_data") is not None:
                parts.append(
                    media_part(string(item["file_data"], f"{name}.file_data"), f"{name}.file_data", "application/pdf")
                )
            elif item.get("file_url") is not None:
                parts.append(
                    media_part(string(item["file_url"], f"{name}.file_url"), f"{name}.file_url", "application/pdf")
                )
            else:
                raise refuse(f"{name}: only file_data and file_url files are supported (not file_id)", name)
        else:
            raise refuse(f"{name}.type: content of type {kind!r} is not supported here", f"{name}.type")
    return parts


def output_text(output: Any, where: str) -> tuple[str, list[dict]]:
    """A function_call_output's output: its text for Gemini's functionResponse, and any media after it."""
    if isinstance(output, str):
        return output, []
    texts, media = [], []
    for part in content_parts(output, where):
        if "text" in part:
            texts.append(part["text"])
        else:
            media.append(part)
    return "\n".join(texts), media


def read_input(items: Any, known_calls: Mapping[str, str]) -> _Input:
    read = _Input(call_names=dict(known_calls))
    if isinstance(items, str):
        read.add("user", [{"text": items}] if items else [])
        return read
    carried_signature: str | None = None
    for index, item in enumerate(array(items, "input")):
        where = f"input[{index}]"
        item = mapping(item, where)
        kind = item.get("type", "message")
        parts: list[dict]
        if kind == "message":
            role = required(item, "role", f"{where}.")
            if role not in ("user", "assistant", "system", "developer"):
                raise refuse(f"{where}.role: expected user, assistant, system or developer", f"{where}.role")
            parts = content_parts(required(item, "content", f"{where}."), f"{where}.content")
            if role in ("system", "developer"):
                read.system.extend(parts)
                continue
            gemini_role = "model" if role == "assistant" else "user"
        elif kind == "function_call":
            call_id = string(required(item, "call_id", f"{where}."), f"{where}.call_id", allow_empty=False)
            name = string(required(item, "name", f"{where}."), f"{where}.name", allow_empty=False)
            if item.get("namespace") is not None:
                name = f"{string(item['namespace'], f'{where}.namespace', allow_empty=False)}.{name}"
            arguments = string(item.get("arguments", "") or "", f"{where}.arguments")
            read.call_names[call_id] = name
            parts = [{"functionCall": {"name": name, "args": json_object_text(arguments, f"{where}.arguments")}}]
            gemini_role = "model"
        elif kind == "function_call_output":
            call_id = string(required(item, "call_id", f"{where}."), f"{where}.call_id", allow_empty=False)
            if call_id not in read.call_names:
                raise refuse(f"{where}: No tool call found for function call output with call_id {call_id}.", where)
            text, media = output_text(required(item, "output", f"{where}."), f"{where}.output")
            parts = [{"functionResponse": {"name": read.call_names[call_id], "response": {"output": text}}}, *media]
            gemini_role = "user"
        elif kind == "reasoning":
            summary = array(item.get("summary") or [], f"{where}.summary")
            texts = [
                string(required(mapping(s, f"{where}.summary[{i}]"), "text", f"{where}.summary[{i}]."), f"{where}.text")
                for i, s in enumerate(summary)
            ]
            signature = item.get("encrypted_content")
            signature = string(signature, f"{where}.encrypted_content") if signature is not None else None
            parts = [{"text": text, "thought": True} for text in texts if text]
            if signature and parts:
                parts[-1]["thoughtSignature"] = signature
            elif signature:
                # A reasoning item with no summary carries the signature of the part that follows.
                carried_signature = signature
            gemini_role = "model"
        else:
            raise refuse(f"{where}.type: input items of type {kind!r} are not supported here", f"{where}.type")
        if carried_signature and parts and kind != "reasoning":
            if gemini_role == "model":
                parts[0]["thoughtSignature"] = carried_signature
            else:
                # The model's turn ended with the signature: Gemini had sent it on an empty part of its own.
                read.add("model", [{"text": "", "thoughtSignature": carried_signature}])
            carried_signature = None
        read.add(gemini_role, parts)
    if carried_signature:
        read.add("model", [{"text": "", "thoughtSignature": carried_signature}])
    return read


def function_tool(tool: dict, where: str, namespace: str | None = None) -> tuple[dict, dict]:
    """A function tool as a Gemini declaration, and as the Response echoes it."""
    name = string(required(tool, "name", f"{where}."), f"{where}.name", allow_empty=False)
    # Gemini has no namespaces; its function names may hold dots, so "ns.name" is one name there.
    declaration: dict = {"name": f"{namespace}.{name}" if namespace else name}
    echo: dict = {"type": "function", "name": name, "description": None, "parameters": None, "strict": None}
    if tool.get("description") is not None:
        declaration["description"] = echo["description"] = string(tool["description"], f"{where}.description")
    if tool.get("parameters") is not None:
        declaration["parametersJsonSchema"] = echo["parameters"] = mapping(tool["parameters"], f"{where}.parameters")
    if tool.get("strict") is not None:
        echo["strict"] = boolean(tool["strict"], f"{where}.strict")
    return declaration, echo


@dataclass
class Tools:
    gemini: list[dict] = field(default_factory=list)  # Gemini's tools
    echoed: list[dict] = field(default_factory=list)  # the tools as the Response repeats them
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # Gemini name -> (namespace, name)

    @property
    def function_names(self) -> set[str]:
        return {d["name"] for tool in self.gemini for d in tool.get("functionDeclarations", [])}


def tools_of(tools: Any) -> Tools:
    declarations: list[dict] = []
    read = Tools()
    for index, tool in enumerate(array(tools, "tools")):
        where = f"tools[{index}]"
        tool = mapping(tool, where)
        kind = required(tool, "type", f"{where}.")
        if kind == "function":
            declaration, echo = function_tool(tool, where)
            declarations.append(declaration)
            read.echoed.append(echo)
        elif kind == "namespace":
            namespace = string(required(tool, "name", f"{where}."), f"{where}.name", allow_empty=False)
            inner_echoes = []
            for inner_index, inner in enumerate(array(required(tool, "tools", f"{where}."), f"{where}.tools")):
                inner_where = f"{where}.tools[{inner_index}]"
                inner = mapping(inner, inner_where)
                if inner.get("type") != "function":
                    raise refuse(f"{inner_where}.type: only function tools can be in a namespace here", inner_where)
                declaration, echo = function_tool(inner, inner_where, namespace)
                declarations.append(declaration)
                inner_echoes.append(echo)
                read.namespaced[declaration["name"]] = (namespace, echo["name"])
            description = tool.get("description")
            echoed = {"type": "namespace", "name": namespace, "tools": inner_echoes}
            read.echoed.append({**echoed, "description": description if isinstance(description, str) else ""})
        elif kind in ("web_search", "web_search_preview"):
            # external_web_access: false (Codex's default) asks for no live search; Gemini has no cached-only one.
            if tool.get("external_web_access") is not False:
                read.gemini.append({"googleSearch": {}})
            read.echoed.append(dict(tool))
        else:
            raise refuse(f"{where}.type: tools of type {kind!r} are not supported by this gateway", f"{where}.type")
    if declarations:
        read.gemini.insert(0, {"functionDeclarations": declarations})
    return read


def tool_config(choice: Any, declared: set[str]) -> dict:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise refuse("tool_choice: expected 'auto', 'none', 'required' or an object", "tool_choice")
        return {"functionCallingConfig": {"mode": TOOL_CHOICE_MODES[choice]}}
    choice = mapping(choice, "tool_choice")
    kind = required(choice, "type", "tool_choice.")
    if kind == "function":
        names = [string(required(choice, "name", "tool_choice."), "tool_choice.name", allow_empty=False)]
        mode = "ANY"
    elif kind == "allowed_tools":
        mode = TOOL_CHOICE_MODES.get(choice.get("mode", "auto"), "")
        if mode not in ("AUTO", "ANY"):
            raise refuse("tool_choice.mode: expected 'auto' or 'required'", "tool_choice.mode")
        allowed = array(required(choice, "tools", "tool_choice."), "tool_choice.tools")
        names = [string(mapping(t, "tool_choice.tools").get("name"), "tool_choice.tools.name") for t in allowed]
    else:
        raise refuse(f"tool_choice.type: {kind!r} is not supported here", "tool_choice.type")
    for name in names:
        if name not in declared:
            raise refuse(f"tool_choice: no function named {name!r} in tools", "tool_choice")
    return {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": names}}


def generation_config(body: dict) -> dict:
    config: dict = {}
    if body.get("max_output_tokens") is not None:
        config["maxOutputTokens"] = integer(body["max_output_tokens"], "max_output_tokens", minimum=1)
    if body.get("temperature") is not None:
        config["temperature"] = number(body["temperature"], "temperature", low=0, high=2)
    if body.get("top_p") is not None:
        config["topP"] = number(body["top_p"], "top_p", low=0, high=1)
    reasoning = mapping(body.get("reasoning") or {}, "reasoning")
    thinking: dict = {}
    if reasoning.get("effort") is not None:
        if reasoning["effort"] not in EFFORT_BUDGETS:
            raise refuse(f"reasoning.effort: expected one of {', '.join(EFFORT_BUDGETS)}", "reasoning.effort")
        thinking["thinkingBudget"] = EFFORT_BUDGETS[reasoning["effort"]]
    if reasoning.get("summary") is not None:
        if reasoning["summary"] not in ("auto", "concise", "detailed"):
            raise refuse("reasoning.summary: expected 'auto', 'concise' or 'detailed'", "reasoning.summary")
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    text = mapping(body.get("text") or {}, "text")
    if text.get("format") is not None:
        form = mapping(text["format"], "text.format")
        kind = required(form, "type", "text.format.")
        if kind == "json_schema":
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = mapping(required(form, "schema", "text.format."), "text.format.schema")
        elif kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind != "text":
            raise refuse("text.format.type: expected 'text', 'json_object' or 'json_schema'", "text.format.type")
    return config


def key_owner(headers: Mapping[str, str]) -> str | None:
    """A stand-in owner when the relay side names none: a keyed hash of the caller's key, never the key.

    None when the key is in no header this reads (``?key=`` is in the query): then nothing is kept.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    bearer = lowered.get("authorization", "")
    key = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
    key = key or lowered.get("x-api-key", "").strip() or lowered.get("x-goog-api-key", "").strip()
    if not key:
        return None
    return "key:" + hmac.new(_OWNER_SALT, key.encode(), hashlib.sha256).hexdigest()


@dataclass
class OpenAIResponses:
    """``POST {base}/responses``.

    ``previous_response_id`` is looked up in ``store`` under ``owner``: the
    relay side should bind the authenticated member with ``for_owner``;
    unbound, the owner is a keyed hash of the caller's key.
    """

    store: ResponseStore = field(default_factory=default_store)
    owner: str | None = None
    new_id: Callable[[str], str] = responses_answers.random_id
    clock: Callable[[], float] = responses_answers.now
    name: str = "openai.responses"

    def for_owner(self, owner: str) -> OpenAIResponses:
        return replace(self, owner=owner)

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        if not isinstance(body, dict):
            raise refuse("The request body must be a JSON object")
        model = string(required(body, "model"), "model", allow_empty=False)
        stream = body.get("stream", False)
        stream = boolean(stream, "stream") if stream is not None else False
        keep = body.get("store", True)
        keep = boolean(keep, "store") if keep is not None else True
        owner = self.owner or key_owner(headers)

        previous: StoredResponse | None = None
        previous_id = body.get("previous_response_id")
        if previous_id is not None:
            previous_id = string(previous_id, "previous_response_id", allow_empty=False)
            previous = self.store.get(owner, previous_id) if owner else None
            if previous is None:
                raise SurfaceError(
                    400,
                    f"Previous response with id '{previous_id}' not found.",
                    "invalid_request_error",
                    "previous_response_id",
                )
        read = read_input(required(body, "input"), previous.call_names if previous else {})
        contents = [*(previous.contents if previous else ()), *read.contents]
        if not contents:
            raise refuse("input: at least one item with content is required", "input")

        request: dict = {"contents": sign_unsigned_calls(contents)}
        instructions = body.get("instructions")
        system = [{"text": string(instructions, "instructions")}] if instructions else []
        system += read.system
        if system:
            request["systemInstruction"] = {"parts": system}
        tools = tools_of(body["tools"]) if body.get("tools") is not None else Tools()
        if tools.gemini:
            request["tools"] = tools.gemini
        if body.get("tool_choice") is not None:
            request["toolConfig"] = tool_config(body["tool_choice"], tools.function_names)
        config = generation_config(body)
        if config:
            request["generationConfig"] = config

        echo = responses_answers.RequestEcho.of(body, tools.echoed, previous_id)
        remember = None
        if keep and owner:
            store, sent, kept_by = self.store, contents, owner

            def remember(response_id: str, answer_content: dict, call_names: dict[str, str]) -> None:
                stored = StoredResponse.of(sent, answer_content, {**read.call_names, **call_names})
                store.put(kept_by, response_id, stored)

        translator = responses_answers.ResponseTranslator(
            model, echo, self.new_id, self.clock, remember, tools.namespaced
        )
        return GeminiCall(model, "streamGenerateContent" if stream else "generateContent", request, translator)

    def error_body(
        self, status: int, message: str, kind: str, param: str | None = None, code: str | None = None
    ) -> dict:
        # param and code extend the contract: a relay side that passes SurfaceError's gives OpenAI's full error.
        return error_body(status, message, responses_answers.openai_error_type(status, kind), param, code)


__all__ = ["BoundedResponseStore", "OpenAIResponses", "error_body"]
