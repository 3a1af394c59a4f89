"""The relay side of every foreign surface: ``gateway.relay.Relay`` with a translator at each end.

Not a second relay: ``SurfaceRelay`` is the native ``Relay`` (the same key
check, admission, dispatch, stream handling, limits settlement and usage
record, clean-up on disconnect included), changed only where a foreign
surface differs:

- the body: after the key is known, the client's JSON goes through the
  surface's ``parse``; the model it names is resolved (``aliases``) and the
  key's allowed-models rule then applies to the resolved Gemini model;
- the answer: a whole Gemini answer goes through ``Translator.unary``; a
  stream's SSE events are parsed here into dicts for ``stream_chunk``, then
  ``stream_end`` (or ``stream_error``, for a late failure);
- errors: every ``ApiError``, ``DispatchError``, ``SurfaceError`` and upstream
  error answer is given in the surface's shape (``error_body``), with
  ``Retry-After`` on 429. A refused key is 401 on every foreign surface.

The usage record names the method ``<surface>/<Gemini action>``
(``openai.chat/generateContent``), the resolved model in ``model`` and the
name the client sent in ``requested_model``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from executors.dispatcher import ResponseHead
from gateway.compat.aliases import resolve
from gateway.compat.surface import GeminiCall, Surface, SurfaceError, Translator, kind_of
from gateway.errors import ApiError
from gateway.payload import checked_body
from gateway.query import Query
from gateway.relay import Call, Relay
from gateway.resources import ModelName

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_RETRY_DELAY = re.compile(r"(\d{1,6})(?:\.\d+)?s")
UPSTREAM_VERSION = "v1beta"  # what Google's own compatibility layer calls; it has every feature


class SurfaceRefusal(ApiError):
    """A ``SurfaceError`` on its way through the relay's error path."""

    def __init__(self, refusal: SurfaceError) -> None:
        super().__init__(refusal.http_status, "INVALID_ARGUMENT", refusal.message)
        self.kind, self.param, self.code = refusal.kind, refusal.param, refusal.code


def surface_response(surface: Surface, error: ApiError, *, before_key: bool = False) -> HttpResponse:
    """``error`` in the surface's shape. A refusal of the key itself is 401, as OpenAI and Anthropic answer it."""
    status = error.http_status
    if isinstance(error, SurfaceRefusal):
        kind = error.kind
    elif before_key and error.outcome == "rejected_auth":
        status, kind = 401, "authentication_error"
    else:
        kind = kind_of(status)
    body = surface.error_body(status, error.message, kind)
    if isinstance(error, SurfaceRefusal) and isinstance(body.get("error"), dict):
        for name in ("param", "code"):
            value = getattr(error, name)
            if value is not None and name in body["error"]:
                body["error"][name] = value
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    for name, value in error.headers.items():
        response[name] = value
    return response


def upstream_error(status: int, body: bytes) -> ApiError:
    """A Gemini error answer as an ApiError: its message, and Retry-After from its RetryInfo on a 429."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return ApiError(status, "UNKNOWN", f"The upstream answered {status} without an error body.")
    message = error["message"] if isinstance(error.get("message"), str) else f"The upstream answered {status}."
    headers = {}
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and (match := _RETRY_DELAY.fullmatch(delay)):
            headers["Retry-After"] = str(int(match.group(1)) + (1 if "." in delay else 0))
    return ApiError(status, str(error.get("status") or "UNKNOWN"), message, headers=headers, outcome="upstream_error")


class TranslatingFraming:
    """Gemini's SSE events in, the surface's events out; a late error in the surface's shape, then nothing."""

    def __init__(self, translator: Translator, on_upstream_error: Callable[[], None]) -> None:
        self.translator = translator
        self._pending = b""
        self._ended = False
        self._on_upstream_error = on_upstream_error

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        data = self._pending + chunk
        out = []
        start = 0
        for match in _EVENT_END.finditer(data):
            out.append(self._event(data[start : match.start()]))
            start = match.end()
            if self._ended:
                break
        self._pending = b"" if self._ended else data[start:]
        return b"".join(out)

    def _event(self, raw: bytes) -> bytes:
        if self._ended:
            return b""
        text = raw.strip()
        if not text:
            return b""
        lines = [line for line in text.splitlines() if not line.startswith(b":")]  # ":" lines are comments
        payload = b"".join(line[5:].lstrip() if line.startswith(b"data:") else line for line in lines)
        if not payload:
            return b""
        try:
            event = json.loads(payload)
        except ValueError:
            return self._fail(502, "The upstream sent a stream event that is not JSON.")
        if not isinstance(event, dict):
            return self._fail(502, "The upstream sent a stream event that is not a JSON object.")
        if isinstance(event.get("error"), dict):  # Google's late error: a bare {"error": ...}
            error = event["error"]
            code = error.get("code") if isinstance(error.get("code"), int) else 500
            message = error.get("message") if isinstance(error.get("message"), str) else "The upstream failed."
            return self._fail(code, message)
        return self.translator.stream_chunk(event)

    def _fail(self, status: int, message: str) -> bytes:
        self._ended = True
        self._on_upstream_error()
        return self.translator.stream_error(status, message)

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        out = self._event(rest)
        if self._ended:
            return out
        self._ended = True
        return out + self.translator.stream_end()

    def error(self, error: ApiError) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        self._pending = b""
        return self.translator.stream_error(error.http_status, error.message)


class SurfaceRelay(Relay):
    def __init__(self, request: HttpRequest, surface: Surface) -> None:
        # The Gemini call is known only once the body is read; until then the call is a placeholder.
        super().__init__(request, Call(UPSTREAM_VERSION, None, "generateContent"))
        self.surface = surface
        self.event.method = f"{surface.name}/unknown"
        self.gemini: GeminiCall | None = None
        self._key_known = False

    async def _upstream_body(self) -> bytes:
        self._key_known = True
        body = checked_body(self.request)
        parsed = json.loads(body) if body else {}
        try:
            gemini = self.surface.parse(parsed, self.request.headers)
            self.event.method = f"{self.surface.name}/{gemini.action}"
            self.event.requested_model = gemini.model[:200]
            model = ModelName("models", await resolve(gemini.model)) if gemini.model else None
        except SurfaceError as refusal:
            raise SurfaceRefusal(refusal) from None
        self.gemini = gemini
        streamed = gemini.action == "streamGenerateContent"
        pairs = tuple(gemini.query.items()) + ((("alt", "sse"),) if streamed else ())
        action = "" if gemini.action.startswith("models.") else gemini.action
        self.call = Call(UPSTREAM_VERSION, model, action, Query(pairs, "sse" if streamed else "json"), streamed)
        self.event.model = self.call.model_id
        self.event.streamed = streamed
        if not action:
            return b""
        if action == "batchEmbedContents":
            # Every request of a batch names its model; the surface could not know the resolved one.
            for request in gemini.body.get("requests", []):
                request["model"] = str(model)
        return json.dumps(gemini.body, separators=(",", ":"), ensure_ascii=False).encode()

    def _whole_response(self, head: ResponseHead, body: bytes) -> HttpResponse:
        assert self.gemini is not None
        if head.status != 200:
            error = upstream_error(head.status, body)
            return surface_response(self.surface, error)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.event.outcome = "upstream_error"
            return surface_response(
                self.surface, ApiError(502, "UNKNOWN", "The upstream's answer is not a JSON object.")
            )
        translated = self.gemini.translator.unary(answer)
        return HttpResponse(json.dumps(translated, ensure_ascii=False), content_type="application/json")

    def _error_response(self, error: ApiError) -> HttpResponse:
        response = surface_response(self.surface, error, before_key=not self._key_known)
        self.event.status_code = response.status_code
        return response

    def _framing(self) -> TranslatingFraming:
        assert self.gemini is not None

        def upstream_failed() -> None:
            self.event.outcome = "upstream_error"

        return TranslatingFraming(self.gemini.translator, upstream_failed)

    def _streams_sse(self) -> bool:
        return True
