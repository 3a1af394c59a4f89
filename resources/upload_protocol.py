"""What every request of the upload protocols shares: the view wrapper, errors, accounting, answers, bounds."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import usage
from accounts.limits import admit
from accounts.models import ProxyKey
from accounts.rejections import Rejection
from accounts.usage import UsageEvent
from gateway.answer_headers import JSON, mark_api_answer, preflight
from gateway.auth import authenticate
from gateway.errors import ApiError, internal_error, invalid_argument, not_found
from resources import storage_quota
from resources.models import StoredFile
from resources.public_origin import public_origin
from resources.serializers import FileSerializer

log = logging.getLogger("gemproxy.calls")

_COMMANDS = frozenset({"start", "upload", "finalize", "query", "cancel"})

View = Callable[..., Awaitable[HttpResponse]]


def upload_api(view: View) -> View:
    """POST only (OPTIONS for CORS); every ApiError in Google's shape; the headers of an API answer."""

    @csrf_exempt
    @wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "OPTIONS":
            return mark_api_answer(preflight(request))
        try:
            if request.method != "POST":
                raise not_found(f"The requested URL {request.path} was not found on this server.")
            response = await view(request, *args, **kwargs)
        except ApiError as error:
            response = error.response()
        except Exception:
            log.exception("%s %r failed in the gateway", request.method, request.path)
            response = internal_error().response()
        return mark_api_answer(response)

    return wrapper


def upload_error(error: ApiError, status: str, received: int | None = None) -> ApiError:
    """An error of the upload protocol, with its ``X-Goog-Upload-Status``.

    ``final`` ends the client's loop (both SDKs stop on it and raise the error);
    ``active`` says the upload goes on, from ``X-Goog-Upload-Size-Received``.
    Without either, the SDKs would retry the same chunk.
    """
    error.headers["X-Goog-Upload-Status"] = status
    if received is not None:
        error.headers["X-Goog-Upload-Size-Received"] = str(received)
    return error


def upload_commands(request: HttpRequest) -> frozenset[str]:
    raw = request.headers.get("x-goog-upload-command", "")
    commands = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    unknown = commands - _COMMANDS
    if unknown or not commands:
        raise invalid_argument(
            f"Invalid X-Goog-Upload-Command {raw[:80]!r}: use start, upload, finalize (as 'upload, finalize'), "
            "query or cancel."
        )
    return commands


class UploadCall:
    """One upload request's accounting: admitted once, recorded once.

    An upload is one call: counted against the key's limits when it starts,
    recorded when it ends (its last chunk, with its size) or is refused; the
    chunks between are parts of that one call.
    """

    def __init__(self, request: HttpRequest, method: str) -> None:
        self.request = request
        self.started = time.monotonic()
        self.event = UsageEvent(outcome="ok", method=method, client_ip=request.META.get("REMOTE_ADDR", ""))

    def by(self, key: ProxyKey) -> None:
        self.event.user_id, self.event.key_id = key.user_id, key.pk

    async def admit(self) -> ProxyKey:
        key = await authenticate(self.request)
        self.by(key)
        try:
            admission = await admit(key, model="", client_ip=self.event.client_ip, request_body=b"")
        except Rejection as rejection:
            raise ApiError.from_rejection(rejection) from None
        # An upload uses no tokens: the request is counted, and settled at once.
        await admission.settle(0)
        return key

    async def record(self, status: int, outcome: str = "ok", request_bytes: int = 0) -> None:
        self.event.status_code, self.event.outcome = status, outcome
        self.event.request_bytes = request_bytes
        self.event.latency_ms = int((time.monotonic() - self.started) * 1000)
        await usage.arecord(self.event)  # durable before the answer completes, as for every call

    async def run(self, work: Callable[[], Awaitable[HttpResponse]]) -> HttpResponse:
        try:
            response = await work()
        except ApiError as error:
            await self.record(error.http_status, error.outcome, self.event.request_bytes)
            raise
        except asyncio.CancelledError:
            await self.record(499, "client_cancelled", self.event.request_bytes)
            raise
        return response


def file_answer(request: HttpRequest, version: str, stored: StoredFile, upload_status: str) -> HttpResponse:
    body = {"file": FileSerializer(stored, context={"origin": public_origin(request), "version": version}).data}
    response = HttpResponse(_json(body), content_type=JSON)
    response["X-Goog-Upload-Status"] = upload_status
    return response


def _json(body: dict) -> bytes:
    return json.dumps(body, indent=2).encode()


def declared_length(request: HttpRequest) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


def file_limit(declared: int | None, room: int | None) -> int:
    """The most bytes this file may have: its declared size, the files' maximum, the key's room."""
    limit = settings.GEMPROXY_MAX_FILE_BYTES if declared is None else declared
    return limit if room is None else min(limit, room)


def too_large(key: ProxyKey, limit: int, room: int | None) -> ApiError:
    """Bytes past ``limit``: the key's room when that was the bound, the file's own size otherwise."""
    if room is not None and limit == room:
        return storage_quota.over_storage(key)
    return invalid_argument(f"The upload goes past {limit} bytes, the most this file may have.")
