"""The stand-in's aiohttp server: recording requests, CORS, key checks and the routes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from executors.standin.answers import (
    Generation,
    _array_element,
    _dump_pretty,
    _midstream_error,
    _sse_event,
    embedding_values,
)
from executors.standin.batches import BatchService
from executors.standin.caches import CachedContents, with_cached_count, with_cached_usage
from executors.standin.catalog import API_VERSIONS, EMBEDDING_DIMENSIONS, MODELS, _find_model
from executors.standin.errors import GoogleError, directive_error
from executors.standin.files import FileStore
from executors.standin.prompts import Directives, Prompt, _as_list, get_field
from executors.standin.quota import FreeTierQuota

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
# Google names its server "scaffolding on HTTPServer2"; the stand-in never passes for Google.
_BASE_HEADERS = {"Server": "gemproxy-standin (not Google)", "X-Content-Type-Options": "nosniff"}


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


def _ok(payload: Any) -> web.Response:
    return web.Response(body=_dump_pretty(payload), content_type="application/json", charset="UTF-8")


class GeminiStandIn:
    """The stand-in server; ``disclose`` marks every answer's modelVersion as the stand-in's.

    Without it, answers carry Google's plain model version, so that the tests
    prove the SDK reads exactly what Google sends; the standalone server, which
    is what the product starts, always discloses.
    """

    def __init__(
        self,
        *,
        valid_keys: set[str] | None = None,
        record: bool = True,
        disclose: bool = False,
        quotas: dict[str, int] | None = None,
        quota_window: float = 60.0,
        batch_delays: tuple[float, float] = (1.0, 1.0),
        file_processing_seconds: float = 0.2,
    ):
        self.valid_keys = valid_keys
        self.files = FileStore(file_processing_seconds)
        self.quota = FreeTierQuota(quotas or {}, quota_window)
        self.caches = CachedContents(check_references=self.files.check_references)
        self.record = record
        self.disclose = disclose
        self.batches = BatchService(delays=batch_delays, disclose=disclose, input_file=self.files.content)
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

    async def __aenter__(self) -> GeminiStandIn:
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
            self.caches.routes(app, version)
        self.batches.routes(app, API_VERSIONS)
        self.files.add_routes(app, API_VERSIONS)
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
            error = GoogleError(404, f"gemproxy stand-in: no route for {request.method} {request.path}.")
            response = web.Response(status=404, body=_dump_pretty(error.body()), content_type="application/json")
        except (asyncio.CancelledError, ConnectionResetError):
            if not self._stopping and not record.aborted:
                record.aborted = True
                self.aborted_streams += 1
                self.stream_aborted.set()
            raise
        finally:
            self.in_flight -= 1
        # Every web.Response here is built from bytes, never from an aiohttp Payload.
        if isinstance(response, web.Response) and isinstance(response.body, bytes | None):
            body = response.body or b""
            record.response_status = response.status
            record.response_body += body
            if len(body) > 1024 and "gzip" in request.headers.get("Accept-Encoding", ""):
                response.enable_compression(web.ContentCoding.gzip)  # as Google does
        return response

    def _check_key(self, request: web.Request) -> None:
        if self.valid_keys is None or request.path.startswith("/_fake/"):
            return
        if request.path.startswith("/upload/") and "upload_id" in request.query:
            return  # an upload's chunks are authorised by its upload id, as Google's are
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
        page_size = _int32_parameter(request, "pageSize", "page_size") or 50
        token = request.query.get("pageToken") or "0"
        if not token.isdigit():
            raise GoogleError(400, "Invalid page token.")  # Google's tokens are opaque; a made-up one is refused
        start = int(token)
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
            "batchGenerateContent": self.batches.create,
        }
        if method not in handlers:
            raise GoogleError(404, f"Method {method} is not supported by the gemproxy stand-in.")
        return await handlers[method](request, model, payload)

    async def _apply_directives(self, prompt: Prompt, model_id: str) -> Directives:
        directives = prompt.directives
        if directives.slow:
            await asyncio.sleep(directives.slow)
        if directives.error:
            raise directive_error(directives.error, model_id, directives.retry_delay)
        return directives

    def _charge_quota(self, request: web.Request, model_id: str) -> None:
        self.quota.charge(request.headers.get("x-goog-api-key") or request.query.get("key"), model_id)

    def _check_files(self, request: web.Request, payload: Any) -> None:
        self.files.check_references(payload, request.headers.get("x-goog-api-key") or request.query.get("key"))

    async def _generate(self, request: web.Request, model: dict, payload: dict) -> web.Response:
        self._check_files(request, payload)
        self._charge_quota(request, model["baseModelId"])
        cached = self.caches.cached_tokens(request, model["baseModelId"], payload)
        prompt = Prompt.read(get_field(payload, "contents"), get_field(payload, "systemInstruction"))
        await self._apply_directives(prompt, model["baseModelId"])
        return _ok(with_cached_usage(Generation(prompt, model["baseModelId"], disclose=self.disclose).whole(), cached))

    async def _stream(self, request: web.Request, model: dict, payload: dict) -> web.StreamResponse:
        self._check_files(request, payload)
        self._charge_quota(request, model["baseModelId"])
        cached = self.caches.cached_tokens(request, model["baseModelId"], payload)
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

        chunks = Generation(prompt, model["baseModelId"], disclose=self.disclose).chunks()
        for index, chunk in enumerate(chunks):
            with_cached_usage(chunk, cached)
            await send(_sse_event(chunk) if sse else _array_element(chunk, index))
            if index == 0:
                if directives.midstream_drop:
                    if request.transport is not None:  # None only once the caller is gone already
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
        self._check_files(request, payload)
        inner = get_field(payload, "generateContentRequest")
        source = inner if isinstance(inner, dict) else payload
        cached = self.caches.cached_tokens(request, model["baseModelId"], inner) if isinstance(inner, dict) else 0
        prompt = Prompt.read(get_field(source, "contents"), get_field(source, "systemInstruction"))
        await self._apply_directives(prompt, model["baseModelId"])
        counted = {"totalTokens": prompt.token_count(), "promptTokensDetails": prompt.token_details()}
        return _ok(with_cached_count(counted, cached))

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


def _int32_parameter(request: web.Request, name: str, field_name: str) -> int:
    """A query parameter Google declares as int32, refused in Google's words when it is not one."""
    raw = request.query.get(name, "")
    try:
        value = int(raw) if raw else 0
    except ValueError:
        raise GoogleError(400, f"Invalid value at '{field_name}' (TYPE_INT32), \"{raw}\"") from None
    if not -(2**31) <= value < 2**31:
        raise GoogleError(400, f"Invalid value at '{field_name}' (TYPE_INT32), \"{raw}\"")
    if value < 0:
        raise GoogleError(400, f"{field_name} must not be negative.")
    return value


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


async def serve_forever(host: str, port: int) -> None:
    """Serve until cancelled, its URL printed as the only line on stdout; recording nothing, disclosing itself."""
    standin = GeminiStandIn(record=False, disclose=True)
    print(await standin.start(host, port), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await standin.stop()
