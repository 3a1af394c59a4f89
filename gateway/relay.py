"""One Gemini call, from the client's request to the client's last byte.

authenticate -> check the body -> admit against the key's limits -> dispatch
to an executor -> relay the answer -> settle the limits and record the usage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.request import RequestDataTooBig

from accounts import usage
from accounts.limits import Admission, Rejection, admit
from accounts.usage import UsageEvent
from executors.dispatcher import DispatchError, Exchange, ResponseHead, Task
from gateway.auth import authenticate
from gateway.errors import ApiError, internal_error, invalid_argument
from gateway.framing import JsonArrayFraming, SseFraming, UsageTracker

log = logging.getLogger("gemproxy.calls")

# Everything else the client sent (its key, cookies, proxy headers) stays here.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "x-goog-api-client", "x-server-timeout")
RELAYED_RESPONSE_HEADERS = ("content-type", "retry-after")


@dataclass(frozen=True)
class Call:
    """What the URL says about a call."""

    version: str  # v1, v1beta, v1alpha
    resource: str  # "models" or "models/gemini-2.5-flash"
    action: str  # "generateContent", ...; "" for a plain GET
    model: str  # "gemini-2.5-flash"; "" when the call names none
    streamed: bool = False

    @property
    def upstream_path(self) -> str:
        path = f"/{self.version}/{self.resource}"
        return f"{path}:{self.action}" if self.action else path

    @property
    def method_name(self) -> str:
        return self.action or ("models.list" if self.resource == "models" else "models.get")


def _query_without_key(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("key", None)
    return query.urlencode()


def _too_large() -> ApiError:
    return invalid_argument(f"Request payload size exceeds the limit: {settings.GEMPROXY_MAX_BODY_BYTES} bytes.")


def _checked_body(request: HttpRequest) -> bytes:
    """The body, if it is one the upstream could accept; never forwarded otherwise."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.GEMPROXY_MAX_BODY_BYTES:
        raise _too_large()
    try:
        body = request.body
    except RequestDataTooBig:  # sent without a Content-Length, and larger than Django accepts
        raise _too_large() from None
    if len(body) > settings.GEMPROXY_MAX_BODY_BYTES:
        raise _too_large()
    if request.method in ("GET", "DELETE"):
        return b""  # SDKs may send "{}" here; the upstream needs nothing
    try:
        parsed = json.loads(body or b"null")
    except ValueError as error:
        raise invalid_argument(f"Invalid JSON payload received. {error}.") from None
    if not isinstance(parsed, dict):
        raise invalid_argument("Invalid JSON payload received. The request body must be a JSON object.")
    return body


def _dispatch_error(error: DispatchError) -> ApiError:
    return ApiError(error.http_status, error.status, error.message, outcome=error.outcome)


class Relay:
    def __init__(self, request: HttpRequest, call: Call) -> None:
        self.request = request
        self.call = call
        self.started = time.monotonic()
        self.event = UsageEvent(
            outcome="ok",
            method=call.method_name,
            model=call.model,
            streamed=call.streamed,
            client_ip=request.META.get("REMOTE_ADDR", ""),
        )
        self.admission: Admission | None = None
        self.exchange: Exchange | None = None
        self.usage = UsageTracker()

    async def respond(self) -> HttpResponse:
        handed_over = False
        try:
            head = await self._start()
            if self.call.streamed and head.status == 200:
                stream = self._stream()
                # Started here so that its ``finally`` owns the clean-up from its
                # first step on, even if the client leaves before Django iterates
                # it, and even if the upstream's stream turns out to be empty.
                handed_over = True
                first = await anext(stream, b"")
                return self._streaming_response(head, first, stream)
            body = b"".join([piece async for piece in self.exchange.body()])
            self.usage.feed(body)
            self._observe_status(head.status)
            self.event.response_bytes = len(body)
            return self._with_headers(HttpResponse(body, status=head.status), head)
        except ApiError as error:
            self.event.outcome = error.outcome
            self.event.status_code = error.http_status
            return error.response()
        except DispatchError as error:
            self.event.outcome = error.outcome
            self.event.status_code = error.http_status
            return _dispatch_error(error).response()
        except asyncio.CancelledError:
            self.event.outcome = "client_cancelled"
            raise
        except Exception:
            log.exception("%s failed in the gateway", self.call.method_name)
            self.event.outcome, self.event.status_code = "gateway_error", 500
            return internal_error().response()
        finally:
            if not handed_over:
                await self._finish()

    async def _start(self) -> ResponseHead:
        key = await authenticate(self.request)
        self.event.user_id, self.event.key_id = key.user_id, key.pk
        body = _checked_body(self.request)
        self.event.request_bytes = len(body)
        try:
            self.admission = await admit(key, model=self.call.model, client_ip=self.event.client_ip, request_body=body)
        except Rejection as rejection:
            raise ApiError.from_rejection(rejection) from None
        self.exchange = Exchange(
            Task(
                method=self.request.method or "GET",
                path=self.call.upstream_path,
                query=_query_without_key(self.request),
                headers={
                    name: value
                    for name in FORWARDED_REQUEST_HEADERS
                    if (value := self.request.headers.get(name)) is not None
                },
                body=body,
                model=self.call.model,
            )
        )
        head = await self.exchange.start()
        self.event.ttfb_ms = int((time.monotonic() - self.started) * 1000)
        self.event.status_code = head.status
        return head

    async def _stream(self) -> AsyncIterator[bytes]:
        assert self.exchange is not None
        framing = SseFraming() if self.request.GET.get("alt") == "sse" else JsonArrayFraming()
        try:
            async for piece in self.exchange.body():
                self.usage.feed(piece)
                out = framing.feed(piece)
                if out:
                    self.event.response_bytes += len(out)
                    yield out
            tail = framing.finish()
            if tail:
                yield tail
        except DispatchError as error:
            self.event.outcome = error.outcome
            yield framing.error(_dispatch_error(error))
        except (asyncio.CancelledError, GeneratorExit):
            self.event.outcome = "client_cancelled"
            raise
        finally:
            await self._finish()

    def _streaming_response(self, head: ResponseHead, first: bytes, rest: AsyncIterator[bytes]) -> HttpResponse:
        async def content() -> AsyncIterator[bytes]:
            yield first
            async for piece in rest:
                yield piece

        response = StreamingHttpResponse(content(), status=head.status)
        # Proxies and browsers must not hold back a stream.
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return self._with_headers(response, head)

    def _with_headers(self, response: HttpResponse, head: ResponseHead) -> HttpResponse:
        for name in RELAYED_RESPONSE_HEADERS:
            if name in head.headers:
                response[name] = head.headers[name]
        if self.admission is not None:
            for name, value in self.admission.headers.items():
                response[name] = value
        return response

    def _observe_status(self, status: int) -> None:
        if status >= 400 and self.event.outcome == "ok":
            self.event.outcome = "upstream_error"

    async def _finish(self) -> None:
        """Free the executor, settle the limits, record the call: always, and quickly."""
        try:
            if self.exchange is not None:
                self.event.attempts = self.exchange.attempts
                self.event.executor_account = self.exchange.account_label
                await self.exchange.close()
        finally:
            metadata = self.usage.usage()
            event = self.event
            event.prompt_tokens = int(metadata.get("promptTokenCount") or 0)
            event.candidates_tokens = int(metadata.get("candidatesTokenCount") or 0)
            event.thoughts_tokens = int(metadata.get("thoughtsTokenCount") or 0)
            event.cached_tokens = int(metadata.get("cachedContentTokenCount") or 0)
            event.latency_ms = int((time.monotonic() - self.started) * 1000)
            if self.admission is not None:
                await self.admission.settle(event.total_tokens)
            usage.record(event)
            log.info(
                "%s %s model=%s status=%s outcome=%s attempts=%s executor=%s tokens=%s ms=%s",
                self.request.method,
                event.method,
                event.model or "-",
                event.status_code,
                event.outcome,
                event.attempts,
                event.executor_account or "-",
                event.total_tokens,
                event.latency_ms,
            )
