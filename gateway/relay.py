"""One Gemini call, from the client's request to the client's last byte.

authenticate -> check the body -> admit against the key's limits -> dispatch
to an executor -> relay the answer -> settle the limits and record the usage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from redis.exceptions import RedisError

from accounts import usage
from accounts.limits import Admission, Rejection, admit
from accounts.usage import UsageEvent
from executors.dispatcher import DispatchError, Exchange, ResponseHead, Task
from gateway import metrics
from gateway.answer_headers import JSON, SSE, relayed_headers, set_headers
from gateway.auth import authenticate
from gateway.errors import ApiError, backend_unavailable, internal_error
from gateway.framing import Framing, JsonArrayFraming, SseFraming, UsageTracker
from gateway.payload import checked_body
from gateway.query import Query
from gateway.request_id import HEADER as REQUEST_ID_HEADER
from gateway.request_id import request_id_of
from gateway.resources import ModelName
from resources.binding import bind
from resources.references import gateway_origins

log = logging.getLogger("gemproxy.calls")

# Everything else the client sent (its key, cookies, proxy headers) stays here.
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "x-goog-api-client", "x-server-timeout")
# Where Django's request.META keeps each: read there, since request.headers raises
# and catches a KeyError for every header the client did not send (3% of a call).
_META_KEYS = tuple(
    (name, "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_"))
    for name in FORWARDED_REQUEST_HEADERS
)

# A service behind the call path is down: Redis (channel layer, registry,
# counters) or the database. The client is told to come back, promptly.
BACKEND_ERRORS = (RedisError, OSError, OperationalError, InterfaceError)


@dataclass(frozen=True)
class Call:
    """What the URL says about a call, every part of it validated."""

    version: str  # v1, v1beta, v1alpha
    model: ModelName | None  # None for models.list
    action: str = ""  # "generateContent", ...; "" for a plain GET
    query: Query = field(default_factory=Query)
    streamed: bool = False

    @property
    def upstream_path(self) -> str:
        # Built from validated parts only: none of them can hold "/", "?", "#", "%" or a control character.
        path = f"/{self.version}/{self.model or 'models'}"
        return f"{path}:{self.action}" if self.action else path

    @property
    def model_id(self) -> str:
        return self.model.model_id if self.model else ""

    @property
    def method_name(self) -> str:
        return self.action or ("models.get" if self.model else "models.list")


class Relay:
    def __init__(self, request: HttpRequest, call: Call) -> None:
        self.request = request
        self.call = call
        self.started = time.monotonic()
        self.request_id = request_id_of(request)
        # Where the call is, so that a backing service's failure is counted against the right one.
        self.stage = "auth"
        self.event = UsageEvent(
            outcome="ok",
            method=call.method_name,
            model=call.model_id,
            streamed=call.streamed,
            client_ip=request.META.get("REMOTE_ADDR", ""),
        )
        self.admission: Admission | None = None
        self.exchange: Exchange | None = None
        self.usage = UsageTracker()

    async def respond(self) -> HttpResponse:
        response = await self._respond()
        set_headers(response, {REQUEST_ID_HEADER: self.request_id})
        return response

    async def _respond(self) -> HttpResponse:
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
            assert self.exchange is not None  # _start made it
            body = b"".join([piece async for piece in self.exchange.body()])
            self.usage.feed(body)
            self._observe_status(head.status)
            self.event.response_bytes = len(body)
            return self._with_headers(self._whole_response(head, body), head)
        except ApiError as error:
            self.event.outcome = error.outcome
            self.event.status_code = error.http_status
            return self._error_response(error)
        except DispatchError as error:
            self.event.outcome = error.outcome
            self.event.status_code = error.http_status
            return self._error_response(ApiError.from_dispatch(error))
        except BACKEND_ERRORS as error:
            log.error("%s refused: a backing service is unavailable: %r", self.call.method_name, error)
            self._count_backend_error(error)
            unavailable = backend_unavailable()
            self.event.outcome, self.event.status_code = unavailable.outcome, unavailable.http_status
            return self._error_response(unavailable)
        except asyncio.CancelledError:
            self.event.outcome = "client_cancelled"
            raise
        except Exception:
            log.exception("%s failed in the gateway", self.call.method_name)
            self.event.outcome, self.event.status_code = "gateway_error", 500
            return self._error_response(internal_error())
        finally:
            if not handed_over:
                await self._finish()

    async def _start(self) -> ResponseHead:
        key = await authenticate(self.request)
        self.event.user_id, self.event.key_id = key.user_id, key.pk
        body = await self._upstream_body()
        self.event.request_bytes = len(body)
        # The proxy's files the body refers to: checked before admission, followed to the account serving it.
        binding = await bind(body, key.user_id, gateway_origins(self.request))
        self.stage = "counters"
        try:
            self.admission = await admit(
                key, model=self.call.model_id, client_ip=self.event.client_ip, request_body=body
            )
        except Rejection as rejection:
            if rejection.reason == "unavailable":  # the counters could not be reached
                metrics.count_backend_error("counters")
            raise ApiError.from_rejection(rejection) from None
        self.stage = "channel_layer"
        self.exchange = Exchange(
            Task(
                method=self.request.method or "GET",
                path=self.call.upstream_path,
                query=self.call.query.forwarded(),
                headers={name: value for name, key in _META_KEYS if (value := self.request.META.get(key)) is not None},
                body=body,
                model=self.call.model_id,
                request_id=self.request_id,
                prefer=binding.prefer if binding else frozenset(),
                binder=binding,
            )
        )
        head = await self.exchange.start()
        self.event.ttfb_ms = int((time.monotonic() - self.started) * 1000)
        self.event.status_code = head.status
        return head

    async def _stream(self) -> AsyncIterator[bytes]:
        assert self.exchange is not None
        framing = self._framing()
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
            yield framing.error(ApiError.from_dispatch(error))
        except BACKEND_ERRORS as error:
            log.error("%s cut short: a backing service is unavailable: %r", self.call.method_name, error)
            self._count_backend_error(error)
            self.event.outcome = "unavailable"
            yield framing.error(backend_unavailable())
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
        self._with_headers(response, head)
        set_headers(
            response,
            {
                # Proxies and browsers must not hold back a stream.
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                # The gateway frames this stream, so its framing names the type, whatever the executor said.
                "Content-Type": SSE if self._streams_sse() else JSON,
            },
        )
        return response

    # What a foreign surface (gateway.compat.relay) changes; everything else is the one relay path.

    async def _upstream_body(self) -> bytes:
        """The body the upstream receives, once the key is known; may also settle ``self.call``."""
        return checked_body(self.request)

    def _whole_response(self, head: ResponseHead, body: bytes) -> HttpResponse:
        return HttpResponse(body, status=head.status)

    def _error_response(self, error: ApiError) -> HttpResponse:
        return error.response()

    def _framing(self) -> Framing:
        return SseFraming() if self.call.query.alt == "sse" else JsonArrayFraming()

    def _streams_sse(self) -> bool:
        return self.call.query.alt == "sse"

    def _with_headers(self, response: HttpResponse, head: ResponseHead) -> HttpResponse:
        headers = relayed_headers(head.headers)
        if self.admission is not None:
            headers.update(self.admission.headers)
        set_headers(response, headers)
        return response

    def _count_backend_error(self, error: BaseException) -> None:
        database = isinstance(error, OperationalError | InterfaceError) or self.stage == "auth"
        metrics.count_backend_error("database" if database else self.stage)

    def _observe_status(self, status: int) -> None:
        if status >= 400 and self.event.outcome == "ok":
            self.event.outcome = "upstream_error"

    async def _finish(self) -> None:
        """Free the executor, settle the limits, record the call: always, and quickly."""
        try:
            if self.exchange is not None:
                self.event.attempts = self.exchange.attempts
                self.event.executor_account = self.exchange.account_label
                self.event.refused_by = ", ".join(self.exchange.refused_by)
                await self.exchange.close()
        except BACKEND_ERRORS as error:
            log.warning("could not cancel the attempt of %s: %r", self.call.method_name, error)
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
            await usage.arecord(event)  # durable before the answer completes
            metrics.count_call(
                event.method,
                event.outcome,
                time.monotonic() - self.started,
                None if event.ttfb_ms is None else event.ttfb_ms / 1000,
                event.model,
                {
                    "prompt": event.prompt_tokens,
                    "candidates": event.candidates_tokens,
                    "thoughts": event.thoughts_tokens,
                    "cached": event.cached_tokens,
                },
            )
            self._log_call(event)

    def _log_call(self, event: UsageEvent) -> None:
        """One line per call; with LOG_FORMAT=json its fields are the object's. Never a key or a query."""
        fields = {
            "request_id": self.request_id,
            "http_method": self.request.method,
            "method": event.method,
            "model": event.model or "-",
            "status": event.status_code,
            "outcome": event.outcome,
            "attempts": event.attempts,
            "executor_account": event.executor_account or "-",
            "refused_by": event.refused_by or "-",
            "tokens": event.total_tokens,
            "duration_ms": event.latency_ms,
        }
        log.info(
            "%s %s model=%s status=%s outcome=%s attempts=%s executor=%s refused_by=%s tokens=%s ms=%s request_id=%s",
            fields["http_method"],
            fields["method"],
            fields["model"],
            fields["status"],
            fields["outcome"],
            fields["attempts"],
            fields["executor_account"],
            fields["refused_by"],
            fields["tokens"],
            fields["duration_ms"],
            fields["request_id"],
            extra=fields,
        )
