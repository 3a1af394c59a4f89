"""A fake Google Gemini API (generativelanguage.googleapis.com) for tests and benchmarks.

It answers in Google's formats, as the installed google-genai SDK parses them:
pretty-printed JSON for unary calls, `data: <compact JSON>\\r\\n\\r\\n` events for
`alt=sse` streams, a JSON array written element by element for streams without
`alt`, and `{"error": {"code", "message", "status", "details"}}` for every error.

In-process::

    async with FakeUpstream() as fake:          # or: await fake.start() / await fake.stop()
        client = genai.Client(api_key="x", http_options={"base_url": fake.url})
        ...
        fake.requests[-1].headers["x-goog-api-key"]

`fake.requests` records every request (method, path, query, lower-case headers,
raw body, parsed JSON) together with what the fake answered (status, body as
written, before any gzip). `fake.stream_held` is set when a `#hold` stream waits,
`fake.release()` lets every waiting stream go on. `fake.stream_aborted` is set
(and `fake.aborted_streams` counted) when a caller closes the connection before
the answer is complete. `fake.in_flight` / `fake.peak_in_flight` count requests
being answered. `FakeUpstream(valid_keys={"k"})` makes it check API keys as Google
does (403 without a key, 400 API_KEY_INVALID for a wrong one); by default any
caller is accepted, as AI Studio's environment does for the browser executor.

Standalone, for benchmarks: `python -m tests.fake_upstream --port 8601` prints its
URL; `POST /_fake/release` releases held streams, `GET /_fake/stats` gives counters.

Directives, written anywhere in the last user text of a request:

    #hold              stream: send the first chunk, then wait for release()
    #chunks=N          stream: N chunks (default 3)
    #error=CODE        answer with Google's error for CODE (400, 403, 404, 429, 500, 503, 504);
                       429 is RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details
    #slow=SECONDS      wait before answering
    #midstream-error   stream: one chunk, then an in-stream error object (500 INTERNAL), as Google does
    #midstream-drop    stream: one chunk, then close the connection abruptly
    #think             add a thought part ({"text", "thought": true}) and thoughtsTokenCount

The reply text is "echo: <last user text>", followed for every inline data part by
"[inline <mime> <decoded length> bytes sha256=<hex>]". A `thoughtSignature` found on
any request part comes back on a part of the answer. Every answer also carries
an unknown top-level field, `fakeUnknownField`, to prove that unknown fields pass.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_VERSIONS = ("v1", "v1beta", "v1alpha")
DEFAULT_STREAM_CHUNKS = 3
# Google counts a fixed number of tokens per image.
TOKENS_PER_INLINE_PART = 258

_GENERATE_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED_METHODS = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]


def _model(model_id: str, display: str, output_limit: int, methods: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "baseModelId": model_id,
        "version": "001",
        "displayName": display,
        "description": f"{display}, as served by the fake upstream.",
        "inputTokenLimit": 1048576 if methods is _GENERATE_METHODS else 2048,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": methods,
        **extra,
    }


_SAMPLING = {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2}
MODELS: list[dict[str, Any]] = [
    _model("gemini-2.5-flash", "Gemini 2.5 Flash", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.5-pro", "Gemini 2.5 Pro", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.0-flash", "Gemini 2.0 Flash", 8192, _GENERATE_METHODS, **{**_SAMPLING, "topK": 40}),
    _model("text-embedding-004", "Text Embedding 004", 1, _EMBED_METHODS),
    _model("gemini-embedding-001", "Gemini Embedding 001", 1, _EMBED_METHODS),
]
_MODELS_BY_ID = {m["baseModelId"]: m for m in MODELS}
EMBEDDING_DIMENSIONS = {"text-embedding-004": 768, "gemini-embedding-001": 3072}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}

# Headers a browser may read on Google's answers; the browser executor needs these.
_EXPOSED_HEADERS = (
    "Content-Type, Content-Length, Date, Server, Vary, X-Goog-Upload-URL, X-Goog-Upload-Status, "
    "X-Goog-Upload-Chunk-Granularity, X-Goog-Upload-Control-URL, X-Goog-Upload-Size"
)
_ALLOWED_METHODS = "DELETE,GET,OPTIONS,PATCH,POST,PUT"
_ALLOWED_HEADERS = (
    "authorization,content-type,x-goog-api-client,x-goog-api-key,x-goog-upload-command,"
    "x-goog-upload-header-content-length,x-goog-upload-header-content-type,x-goog-upload-offset,"
    "x-goog-upload-protocol,x-goog-user-project"
)
_BASE_HEADERS = {"Server": "scaffolding on HTTPServer2", "X-Content-Type-Options": "nosniff"}

_DIRECTIVE = re.compile(r"#(hold|think|midstream-error|midstream-drop|chunks=\d+|error=\d{3}|slow=[\d.]+)")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any = None
    response_status: int | None = None
    response_body: bytearray = field(default_factory=bytearray)
    aborted: bool = False  # the caller went away before the answer was complete

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")


_RECORD = web.RequestKey("record", RecordedRequest)


@dataclass
class Directives:
    hold: bool = False
    think: bool = False
    midstream_error: bool = False
    midstream_drop: bool = False
    chunks: int = DEFAULT_STREAM_CHUNKS
    error: int | None = None
    slow: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Directives:
        found = cls()
        for token in _DIRECTIVE.findall(text):
            name, _, value = token.partition("=")
            if name == "chunks":
                found.chunks = max(1, int(value))
            elif name == "error":
                found.error = int(value)
            elif name == "slow":
                found.slow = float(value)
            else:
                setattr(found, name.replace("-", "_"), True)
        return found


class GoogleError(Exception):
    """Raised by handlers; the middleware answers it as Google's error body."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def directive_error(code: int, model_id: str) -> GoogleError:
    if code == 429:
        return GoogleError(
            429,
            _DEFAULT_MESSAGES[429],
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": model_id},
                            "quotaValue": "10",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            ],
        )
    return GoogleError(code, _DEFAULT_MESSAGES.get(code, f"Fake error {code} requested by #error."))


# Reading requests: Google accepts camelCase and snake_case at every depth.


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def get_field(obj: Any, camel: str, default: Any = None) -> Any:
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel), default)


def decode_base64(data: str) -> bytes:
    """Standard or URL-safe base64, padded or not, as Google accepts."""
    cleaned = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise GoogleError(
            400, "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
        ) from exc


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Prompt:
    """What the fake reads from a request's contents."""

    last_user_text: str = ""
    texts: list[str] = field(default_factory=list)
    inline_parts: list[tuple[str, bytes]] = field(default_factory=list)
    file_uris: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, contents: Any, system_instruction: Any = None) -> Prompt:
        prompt = cls()
        for content in _as_list(system_instruction):
            prompt._read_content(content)
        for content in _as_list(contents):
            user_texts = prompt._read_content(content)
            if get_field(content, "role", "user") == "user" and user_texts:
                prompt.last_user_text = user_texts[-1]
        return prompt

    def _read_content(self, content: Any) -> list[str]:
        """Reads a Content's parts and returns its texts."""
        if isinstance(content, str):
            content = {"parts": [{"text": content}]}
        texts: list[str] = []
        for part in _as_list(get_field(content, "parts")):
            self._read_part(part, texts)
        return texts

    def _read_part(self, part: Any, user_texts: list[str]) -> None:
        if isinstance(part, str):
            part = {"text": part}
        text = get_field(part, "text")
        if isinstance(text, str):
            self.texts.append(text)
            user_texts.append(text)
        inline = get_field(part, "inlineData")
        if isinstance(inline, dict):
            mime = get_field(inline, "mimeType", "application/octet-stream")
            self.inline_parts.append((mime, decode_base64(get_field(inline, "data", ""))))
        file_data = get_field(part, "fileData")
        if isinstance(file_data, dict):
            self.file_uris.append(get_field(file_data, "fileUri", ""))
        signature = get_field(part, "thoughtSignature")
        if isinstance(signature, str):
            self.signatures.append(signature)

    @property
    def directives(self) -> Directives:
        return Directives.parse(self.last_user_text)

    def token_details(self) -> list[dict[str, Any]]:
        details = [{"modality": "TEXT", "tokenCount": sum(count_tokens(t) for t in self.texts)}]
        if self.inline_parts or self.file_uris:
            images = TOKENS_PER_INLINE_PART * (len(self.inline_parts) + len(self.file_uris))
            details.append({"modality": "IMAGE", "tokenCount": images})
        return details

    def token_count(self) -> int:
        return sum(d["tokenCount"] for d in self.token_details())

    def reply_text(self) -> str:
        pieces = [f"echo: {self.last_user_text}"]
        for mime, data in self.inline_parts:
            pieces.append(f"[inline {mime} {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}]")
        pieces.extend(f"[file {uri}]" for uri in self.file_uris)
        return " ".join(pieces)


def count_tokens(text: str) -> int:
    # About four characters per token, as Google's tokenizer roughly gives.
    return math.ceil(len(text) / 4)


# Building answers.


def _dump_pretty(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def _dump_compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def split_text(text: str, pieces: int) -> list[str]:
    bounds = [len(text) * i // pieces for i in range(pieces + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(pieces)]


class Generation:
    """The deterministic answer to one generateContent request, whole or in chunks."""

    def __init__(self, prompt: Prompt, model_id: str):
        self.prompt = prompt
        self.model_id = model_id
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
            "modelVersion": self.model_id,
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


def _ok(payload: Any) -> web.Response:
    return web.Response(body=_dump_pretty(payload), content_type="application/json", charset="UTF-8")


class FakeUpstream:
    def __init__(self, *, valid_keys: set[str] | None = None, record: bool = True):
        self.valid_keys = valid_keys
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.request_count = 0
        self.stream_held = asyncio.Event()
        self.stream_aborted = asyncio.Event()
        self.aborted_streams = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.url = ""
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._stopping = False

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app.on_response_prepare.append(_add_google_headers)
        app.router.add_post("/_fake/release", self._release_endpoint)
        app.router.add_get("/_fake/stats", self._stats_endpoint)
        for version in API_VERSIONS:
            app.router.add_get(f"/{version}/models", self._list_models)
            app.router.add_get(f"/{version}/models/{{model}}", self._get_model)
            app.router.add_post(f"/{version}/models/{{model_method}}", self._model_method)
        # handler_cancellation: a caller that hangs up cancels its handler, even one
        # waiting at #hold, which is how stream_aborted learns of it.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Let every stream waiting at #hold go on; later #hold streams wait again."""
        gate, self._gate = self._gate, asyncio.Event()
        self.stream_held.clear()
        gate.set()

    def requests_to(self, method_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(method_suffix)]

    # Plumbing shared by every route.

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=_try_json(body),
        )
        self.request_count += 1
        if self.record:
            self.requests.append(record)
        request[_RECORD] = record
        if request.method == "OPTIONS":
            return _preflight(request)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self._check_key(request)
            response = await handler(request)
        except GoogleError as exc:
            response = web.Response(
                status=exc.code, body=_dump_pretty(exc.body()), content_type="application/json", charset="UTF-8"
            )
        except web.HTTPException:
            error = GoogleError(404, f"Fake upstream: no route for {request.method} {request.path}.")
            response = web.Response(status=404, body=_dump_pretty(error.body()), content_type="application/json")
        except (asyncio.CancelledError, ConnectionResetError):
            if not self._stopping and not record.aborted:
                record.aborted = True
                self.aborted_streams += 1
                self.stream_aborted.set()
            raise
        finally:
            self.in_flight -= 1
        if isinstance(response, web.Response):
            record.response_status = response.status
            record.response_body += response.body or b""
            if len(response.body or b"") > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
                response.enable_compression(web.ContentCoding.gzip)  # as Google does
        return response

    def _check_key(self, request: web.Request) -> None:
        if self.valid_keys is None or request.path.startswith("/_fake/"):
            return
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if key not in self.valid_keys:
            raise GoogleError(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )

    # Routes.

    async def _list_models(self, request: web.Request) -> web.Response:
        page_size = int(request.query.get("pageSize") or 50)
        start = int(request.query.get("pageToken") or 0)
        page: dict[str, Any] = {"models": MODELS[start : start + page_size]}
        if start + page_size < len(MODELS):
            page["nextPageToken"] = str(start + page_size)
        return _ok(page)

    async def _get_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["model"]
        return _ok(_find_model(model_id, request))

    async def _model_method(self, request: web.Request) -> web.StreamResponse:
        model_id, _, method = request.match_info["model_method"].partition(":")
        model = _find_model(model_id, request, method)
        payload = request[_RECORD].json
        if not isinstance(payload, dict):
            raise GoogleError(400, "Invalid JSON payload received. Unexpected token.")
        handlers = {
            "generateContent": self._generate,
            "streamGenerateContent": self._stream,
            "countTokens": self._count_tokens,
            "embedContent": self._embed,
            "batchEmbedContents": self._batch_embed,
        }
        if method not in handlers:
            raise GoogleError(404, f"Method {method} is not supported by the fake upstream.")
        return await handlers[method](request, model, payload)

    async def _apply_directives(self, prompt: Prompt, model_id: str) -> Directives:
        directives = prompt.directives
        if directives.slow:
            await asyncio.sleep(directives.slow)
        if directives.error:
            raise directive_error(directives.error, model_id)
        return directives

    async def _generate(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        prompt = Prompt.read(get_field(payload, "contents"), get_field(payload, "systemInstruction"))
        await self._apply_directives(prompt, model["baseModelId"])
        return _ok(Generation(prompt, model["baseModelId"]).whole())

    async def _stream(self, request: web.Request, model: dict, payload: dict) -> web.StreamResponse:
        prompt = Prompt.read(get_field(payload, "contents"), get_field(payload, "systemInstruction"))
        directives = await self._apply_directives(prompt, model["baseModelId"])
        # Taken before the first write, so a release() that follows it is never missed.
        gate = self._gate
        sse = request.query.get("alt") == "sse"
        record: RecordedRequest = request[_RECORD]
        response = web.StreamResponse(headers={"Content-Disposition": "attachment"})
        response.content_type = "text/event-stream" if sse else "application/json"
        response.charset = "UTF-8"
        await response.prepare(request)
        record.response_status = 200

        async def send(data: bytes) -> None:
            record.response_body += data
            await response.write(data)  # write() drains, so each chunk leaves at once

        chunks = Generation(prompt, model["baseModelId"]).chunks()
        for index, chunk in enumerate(chunks):
            await send(_sse_event(chunk) if sse else _array_element(chunk, index))
            if index == 0:
                if directives.midstream_drop:
                    request.transport.abort()
                    return response
                if directives.midstream_error:
                    await send(_midstream_error(sse))
                    await response.write_eof()
                    return response
                if directives.hold:
                    self.stream_held.set()
                    await gate.wait()
        if not sse:
            await send(b"\n]")
        await response.write_eof()
        return response

    async def _count_tokens(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        inner = get_field(payload, "generateContentRequest")
        source = inner if isinstance(inner, dict) else payload
        prompt = Prompt.read(get_field(source, "contents"), get_field(source, "systemInstruction"))
        await self._apply_directives(prompt, model["baseModelId"])
        return _ok({"totalTokens": prompt.token_count(), "promptTokensDetails": prompt.token_details()})

    async def _embed(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        return _ok({"embedding": await self._embedding(model, payload)})

    async def _batch_embed(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        requests = _as_list(get_field(payload, "requests"))
        return _ok({"embeddings": [await self._embedding(model, item) for item in requests]})

    async def _embedding(self, model: dict, item: dict) -> dict[str, Any]:
        prompt = Prompt.read(get_field(item, "content"))
        await self._apply_directives(prompt, model["baseModelId"])
        config = get_field(item, "embedContentConfig") or {}
        dimensions = get_field(item, "outputDimensionality") or get_field(config, "outputDimensionality")
        dimensions = int(dimensions or EMBEDDING_DIMENSIONS.get(model["baseModelId"], 768))
        return {"values": embedding_values(" ".join(prompt.texts), dimensions)}

    async def _release_endpoint(self, request: web.Request) -> web.Response:
        self.release()
        return _ok({})

    async def _stats_endpoint(self, request: web.Request) -> web.Response:
        return _ok(
            {
                "requests": self.request_count,
                "inFlight": self.in_flight,
                "peakInFlight": self.peak_in_flight,
                "abortedStreams": self.aborted_streams,
            }
        )


def _find_model(model_id: str, request: web.Request, method: str = "") -> dict[str, Any]:
    model = _MODELS_BY_ID.get(model_id)
    version = request.path.split("/")[1]
    if model is None:
        if method:
            raise GoogleError(
                404,
                f"models/{model_id} is not found for API version {version}, or is not supported for {method}. "
                "Call ListModels to see the list of available models and their supported methods.",
            )
        raise GoogleError(404, f"models/{model_id} is not found for API version {version}.")
    return model


def _sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + _dump_compact(chunk) + b"\r\n\r\n"


def _array_element(chunk: dict[str, Any], index: int) -> bytes:
    return (b"[" if index == 0 else b",\r\n") + _dump_pretty(chunk)


def _midstream_error(sse: bool) -> bytes:
    # An error after the stream started is one compact JSON object in one write;
    # in a JSON-array stream it is the last element.
    error = _dump_compact(GoogleError(500, _DEFAULT_MESSAGES[500]).body())
    return error if sse else b",\r\n" + error + b"\n]"


def _try_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _preflight(request: web.Request) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers")
    return web.Response(
        headers={
            "Access-Control-Allow-Methods": _ALLOWED_METHODS,
            "Access-Control-Allow-Headers": requested.lower() if requested else _ALLOWED_HEADERS,
            "Access-Control-Max-Age": "3600",
        }
    )


async def _add_google_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_BASE_HEADERS)
    response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
    response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
    response.headers["Vary"] = "Origin, X-Origin, Referer"


async def _serve_forever(host: str, port: int) -> None:
    fake = FakeUpstream(record=False)
    print(await fake.start(host, port), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Gemini API for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8601)
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
