"""``files.get``, ``files.list``, ``files.delete`` (DRF, from gemproxy's tables) and ``files/{id}:download``.

A member sees only their own files. Another member's file, and one that
never existed, get the same answer Google gives for both: 403
PERMISSION_DENIED "... or it may not exist", so that ids cannot be probed.
Files still being uploaded and expired ones are not there at all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from channels.db import database_sync_to_async
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import usage
from accounts.limits import admit
from accounts.rejections import Rejection
from accounts.usage import UsageEvent
from gateway.answer_headers import mark_api_answer, preflight
from gateway.auth import authenticate
from gateway.errors import ApiError, internal_error, invalid_argument
from resources import generated, storage
from resources.google_api import GoogleResourceView, Paging, listed
from resources.models import StoredFile
from resources.public_origin import public_origin
from resources.serializers import FileSerializer

log = logging.getLogger("gemproxy.calls")

_FILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
PAGING = Paging(default_size=10, max_size=100)
_OUTCOMES = {200: "ok", 400: "bad_request", 403: "rejected_auth", 429: "rejected_quota", 500: "gateway_error"}


def shown_files() -> QuerySet:
    """The files that exist as far as the API is concerned: whole, and not expired."""
    return StoredFile.objects.exclude(state=StoredFile.State.UPLOADING).filter(expires_at__gt=timezone.now())


def no_such_file(file_id: str) -> ApiError:
    return ApiError(
        403,
        "PERMISSION_DENIED",
        f"You do not have permission to access the File {file_id} or it may not exist.",
    )


def checked_id(file_id: str) -> str:
    if not _FILE_ID.fullmatch(file_id):
        raise invalid_argument(f"Invalid file name 'files/{file_id[:60]}': ids are lowercase letters, digits, dashes.")
    return file_id


class _FileView(GoogleResourceView):
    """Each call is recorded in usage, as every call through the gateway is."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.started = time.monotonic()
        super().initial(request, *args, **kwargs)
        self.key.check_client_ip(request.META.get("REMOTE_ADDR", ""))

    def handle_exception(self, exc: Exception):
        if isinstance(exc, Rejection):
            exc = ApiError.from_rejection(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        key = request.auth if hasattr(request, "_auth") else None
        usage.record(
            UsageEvent(
                outcome=_OUTCOMES.get(response.status_code, "bad_request"),
                method=self.usage_method(request),
                status_code=response.status_code,
                user_id=getattr(key, "user_id", None),
                key_id=getattr(key, "pk", None),
                response_bytes=len(response.rendered_content) if hasattr(response, "rendered_content") else 0,
                latency_ms=int((time.monotonic() - getattr(self, "started", time.monotonic())) * 1000),
                client_ip=request.META.get("REMOTE_ADDR", ""),
            )
        )
        return response

    def usage_method(self, request) -> str:
        return "files"

    def context(self, version: str) -> dict:
        return {"origin": public_origin(self.request), "version": version}

    def mine(self, file_id: str) -> StoredFile:
        found = self.owned(shown_files()).filter(pk=checked_id(file_id)).first()
        if found is None:
            raise no_such_file(file_id)
        return found


class FileList(_FileView):
    def usage_method(self, request) -> str:
        return "files.list"

    def get(self, request: Request, version: str) -> Response:
        rows, next_token = PAGING.page(request, self.owned(shown_files()).order_by("-created_at", "-id"))
        return listed("files", FileSerializer(rows, many=True, context=self.context(version)).data, next_token)


class FileDetail(_FileView):
    def usage_method(self, request) -> str:
        return "files.delete" if request.method == "DELETE" else "files.get"

    def get(self, request: Request, version: str, file_id: str) -> Response:
        return Response(FileSerializer(self.mine(file_id), context=self.context(version)).data)

    def delete(self, request: Request, version: str, file_id: str) -> Response:
        stored = self.mine(file_id)
        # The row first: once it is gone the file is gone for every reader, whatever happens to the bytes.
        # Copies on executor accounts keep their placements: the sweep deletes them upstream (orphans).
        if StoredFile.objects.filter(pk=stored.pk).delete()[0]:
            storage.delete(stored.storage_name)
        return Response({})


@csrf_exempt
async def download(request: HttpRequest, version: str, file_id: str) -> HttpResponse:
    """``files/{id}:download?alt=media``: the bytes, streamed from storage (or, for a generated file, its account)."""
    if request.method == "OPTIONS":
        return mark_api_answer(preflight(request))
    started = time.monotonic()
    event = UsageEvent(outcome="ok", method="files.download", client_ip=request.META.get("REMOTE_ADDR", ""))
    try:
        if request.method != "GET":
            raise ApiError(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed; use GET.")
        key = await authenticate(request)
        event.user_id, event.key_id = key.user_id, key.pk
        try:
            admission = await admit(key, model="", client_ip=event.client_ip, request_body=b"")
        except Rejection as rejection:
            raise ApiError.from_rejection(rejection) from None
        await admission.settle(0)
        stored = await database_sync_to_async(_owned_file)(key.user_id, file_id)
        if stored.source != "UPLOADED":
            event.status_code = 200
            await usage.arecord(event)
            return mark_api_answer(await generated.relay_download(request, stored))
        if request.GET.get("alt") != "media":
            raise invalid_argument("Download the bytes of a file with alt=media.")
        handle = await storage.aopen(stored.storage_name)
    except ApiError as error:
        event.outcome, event.status_code = error.outcome, error.http_status
        await usage.arecord(event)
        return mark_api_answer(error.response())
    except Exception:
        log.exception("files.download of %r failed in the gateway", file_id)
        event.outcome, event.status_code = "gateway_error", 500
        await usage.arecord(event)
        return mark_api_answer(internal_error().response())

    async def content():
        try:
            async for piece in storage.aread(handle):
                event.response_bytes += len(piece)
                yield piece
        except (asyncio.CancelledError, GeneratorExit):
            event.outcome = "client_cancelled"
            raise
        finally:
            event.status_code = 200
            event.latency_ms = int((time.monotonic() - started) * 1000)
            await usage.arecord(event)

    media_type = stored.mime_type.split(";")[0] or "application/octet-stream"
    response = StreamingHttpResponse(content(), content_type=media_type)
    response["Content-Length"] = str(stored.size_bytes)
    # Served from the gateway's origin: a member's HTML must never run as one of its pages.
    response["Content-Disposition"] = "attachment"
    response["Content-Security-Policy"] = "sandbox"
    return mark_api_answer(response)


def _owned_file(user_id: int, file_id: str) -> StoredFile:
    found = shown_files().filter(owner_id=user_id, pk=checked_id(file_id)).first()
    if found is None:
        raise no_such_file(file_id)
    return found
