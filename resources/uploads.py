"""``POST /upload/{v}/files``: Google's upload protocols, ending at the gateway's storage.

- **resumable**, as both SDKs drive it: ``start`` (the metadata; answers
  ``X-Goog-Upload-URL``), then chunks to that URL with ``upload`` and, on the
  last, ``upload, finalize`` at ``X-Goog-Upload-Offset``; also ``query`` and
  ``cancel``. The Python SDK sends chunks with no key and the JS SDK with one,
  so a chunk is authorised by the unguessable upload id; a key sent with it
  must be its member's, and the key that started the upload must still be good.
- **multipart** (``uploadType=multipart``): metadata and bytes in one
  ``multipart/related`` body, for curl users.
- **media** (``uploadType=media``): the bytes alone, typed by ``Content-Type``.

Each request's body is bounded by the server (``GEMPROXY_MAX_UPLOAD_BODY_BYTES``,
above the SDKs' 8 MiB chunks); a larger file goes in chunks. Bytes are read in
pieces from Django's spooled body straight into storage, in a worker thread.
An upload counts as one call against the key's limits when it starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import usage
from accounts.authentication import secret_from
from accounts.limits import admit
from accounts.models import ProxyKey
from accounts.rejections import Rejection
from accounts.usage import UsageEvent
from gateway.answer_headers import JSON, mark_api_answer, preflight
from gateway.auth import authenticate
from gateway.errors import ApiError, internal_error, invalid_argument, not_found
from gateway.payload import checked_body
from resources import storage, storage_quota, sweep, upload_records
from resources.file_metadata import file_fields, parse_metadata
from resources.models import StoredFile, UploadSession
from resources.multipart import MalformedMultipart, RelatedParts, boundary_of
from resources.public_origin import public_origin
from resources.serializers import FileSerializer
from resources.storage import TooLarge, Written

log = logging.getLogger("gemproxy.calls")

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OFFSET = re.compile(r"[0-9]{1,19}")
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


def _upload_error(error: ApiError, status: str, received: int | None = None) -> ApiError:
    """An error of the upload protocol, with its ``X-Goog-Upload-Status``.

    ``final`` ends the client's loop (both SDKs stop on it and raise the error);
    ``active`` says the upload goes on, from ``X-Goog-Upload-Size-Received``.
    Without either, the SDKs would retry the same chunk.
    """
    error.headers["X-Goog-Upload-Status"] = status
    if received is not None:
        error.headers["X-Goog-Upload-Size-Received"] = str(received)
    return error


def _query(request: HttpRequest) -> dict[str, str]:
    # The first of each name; the raw string, so that a flood of fields costs nothing.
    fields: dict[str, str] = {}
    for name, value in parse_qsl(request.META.get("QUERY_STRING", "")[:4096], keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def _commands(request: HttpRequest) -> frozenset[str]:
    raw = request.headers.get("x-goog-upload-command", "")
    commands = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    unknown = commands - _COMMANDS
    if unknown or not commands:
        raise invalid_argument(
            f"Invalid X-Goog-Upload-Command {raw[:80]!r}: use start, upload, finalize (as 'upload, finalize'), "
            "query or cancel."
        )
    return commands


class _Call:
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

    def record(self, status: int, outcome: str = "ok", request_bytes: int = 0) -> None:
        self.event.status_code, self.event.outcome = status, outcome
        self.event.request_bytes = request_bytes
        self.event.latency_ms = int((time.monotonic() - self.started) * 1000)
        usage.record(self.event)

    async def run(self, work: Callable[[], Awaitable[HttpResponse]]) -> HttpResponse:
        try:
            response = await work()
        except ApiError as error:
            self.record(error.http_status, error.outcome, self.event.request_bytes)
            raise
        except asyncio.CancelledError:
            self.record(499, "client_cancelled", self.event.request_bytes)
            raise
        return response


def _upload_url(request: HttpRequest, version: str, upload_id: str) -> str:
    return f"{public_origin(request)}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"


def _file_answer(request: HttpRequest, version: str, stored: StoredFile, upload_status: str) -> HttpResponse:
    body = {"file": FileSerializer(stored, context={"origin": public_origin(request), "version": version}).data}
    response = HttpResponse(_json(body), content_type=JSON)
    response["X-Goog-Upload-Status"] = upload_status
    return response


def _json(body: dict) -> bytes:
    return json.dumps(body, indent=2).encode()


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


@upload_api
async def upload_files(request: HttpRequest, version: str) -> HttpResponse:
    sweep.ensure_running()
    query = _query(request)
    if "upload_id" in query:
        return await _chunk(request, version, query["upload_id"])
    protocol = (request.headers.get("x-goog-upload-protocol") or query.get("uploadType") or "").lower()
    if protocol == "resumable":
        call = _Call(request, "files.upload")
        return await call.run(lambda: _start(call, version))
    if protocol == "multipart":
        call = _Call(request, "files.upload")
        return await call.run(lambda: _multipart(call, version))
    if protocol in ("media", "raw"):
        call = _Call(request, "files.upload")
        return await call.run(lambda: _media(call, version))
    call = _Call(request, "files.upload")

    async def unknown() -> HttpResponse:
        await call.admit()  # a caller without a valid key learns only that
        raise invalid_argument(
            "Unknown upload protocol: send X-Goog-Upload-Protocol: resumable, "
            "or uploadType=multipart or uploadType=media."
        )

    return await call.run(unknown)


async def _start(call: _Call, version: str) -> HttpResponse:
    request = call.request
    key = await call.admit()
    if _commands(request) != {"start"}:
        raise invalid_argument("A resumable upload begins with X-Goog-Upload-Command: start.")
    metadata = parse_metadata(checked_body(request))
    fields = file_fields(
        metadata,
        header_size=request.headers.get("x-goog-upload-header-content-length"),
        header_type=request.headers.get("x-goog-upload-header-content-type"),
    )
    session = await database_sync_to_async(upload_records.start_session)(key, fields)
    response = HttpResponse(status=200, content_type=JSON)
    response["X-Goog-Upload-URL"] = _upload_url(request, version, session.pk)
    response["X-Goog-Upload-Status"] = "active"
    response["X-Goog-Upload-Chunk-Granularity"] = str(256 * 1024)
    return response


async def _multipart(call: _Call, version: str) -> HttpResponse:
    request = call.request
    key = await call.admit()
    try:
        boundary = boundary_of(request.headers.get("content-type", ""))
    except MalformedMultipart as error:
        raise invalid_argument(str(error)) from None
    await database_sync_to_async(storage_quota.check_new_file)(key, None)
    room = await database_sync_to_async(storage_quota.bytes_left)(key)

    def receive() -> tuple[upload_records.FileFields, Written]:
        parts = RelatedParts(request.read, boundary)
        try:
            _headers, metadata_body = parts.metadata()
            media_type = parts.media_headers().get("content-type", "")
        except MalformedMultipart as error:
            raise invalid_argument(str(error)) from None
        # The metadata's own MIME type wins; the media part's type fills in for it.
        fallback = media_type.strip() or "application/octet-stream"
        fields = file_fields(parse_metadata(metadata_body), header_size=None, header_type=None, fallback_type=fallback)
        limit = _limit(fields.size, room)
        try:
            written = storage.save(_new_storage_name(), parts.media(), limit=limit)
        except MalformedMultipart as error:
            raise invalid_argument(str(error)) from None
        except TooLarge:
            raise _too_large(key, limit, room) from None
        return fields, _checked_size(fields.size, written)

    fields, written = await asyncio.to_thread(receive)
    call.event.request_bytes = written.size
    return await _store_whole(call, key, version, fields, written)


async def _media(call: _Call, version: str) -> HttpResponse:
    request = call.request
    key = await call.admit()
    fields = file_fields(
        {},
        header_size=None,
        header_type=request.headers.get("content-type") or "application/octet-stream",
    )
    declared = _declared_length(request)
    await database_sync_to_async(storage_quota.check_new_file)(key, declared)
    room = await database_sync_to_async(storage_quota.bytes_left)(key)

    def receive() -> Written:
        limit = _limit(declared, room)
        try:
            written = storage.save(_new_storage_name(), request, limit=limit)
        except TooLarge:
            raise _too_large(key, limit, room) from None
        return _checked_size(declared, written)

    written = await asyncio.to_thread(receive)
    call.event.request_bytes = written.size
    return await _store_whole(call, key, version, fields, written)


def _new_storage_name() -> str:
    return f"files/{secrets.token_hex(16)}"


def _limit(declared: int | None, room: int | None) -> int:
    """The most bytes this file may have: its declared size, the files' maximum, the key's room."""
    limit = settings.GEMPROXY_MAX_FILE_BYTES if declared is None else declared
    return limit if room is None else min(limit, room)


def _too_large(key: ProxyKey, limit: int, room: int | None) -> ApiError:
    """Bytes past ``limit``: the key's room when that was the bound, the file's own size otherwise."""
    if room is not None and limit == room:
        return storage_quota.over_storage(key)
    return invalid_argument(f"The upload goes past {limit} bytes, the most this file may have.")


def _checked_size(declared: int | None, written: Written) -> Written:
    if declared is not None and written.size != declared:
        storage.delete(written.storage_name)
        raise invalid_argument(f"The upload declared {declared} bytes but sent {written.size}.")
    return written


async def _store_whole(
    call: _Call, key: ProxyKey, version: str, fields: upload_records.FileFields, written: Written
) -> HttpResponse:
    try:
        stored = await database_sync_to_async(upload_records.create_whole)(key, fields, written)
    except BaseException:
        await asyncio.to_thread(storage.delete, written.storage_name)
        raise
    call.record(200, request_bytes=written.size)
    # One request carried it all: the answer is the finished upload's.
    return _file_answer(call.request, version, stored, "final")


async def _chunk(request: HttpRequest, version: str, upload_id: str) -> HttpResponse:
    call = _Call(request, "files.upload")
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise _upload_error(not_found("No upload session with this id."), "final")
    session = await database_sync_to_async(upload_records.load_session)(upload_id)
    if session is None:
        gone = not_found("No upload session with this id (it finished, expired or never existed).")
        raise _upload_error(gone, "final")
    key = session.file.key
    if key is None:
        raise _upload_error(_permission_denied("The key that started this upload was deleted."), "final")
    call.by(key)
    await _check_chunk_caller(request, session, key)
    return await call.run(lambda: _chunk_commands(call, version, session, key))


def _permission_denied(message: str) -> ApiError:
    return ApiError(403, "PERMISSION_DENIED", message, outcome="rejected_auth")


async def _check_chunk_caller(request: HttpRequest, session: UploadSession, key: ProxyKey) -> None:
    """The starting key must still be usable; a key sent along (JS) must be the same member's."""
    try:
        key.check_usable()
        key.check_client_ip(request.META.get("REMOTE_ADDR", ""))
    except Rejection as rejection:
        raise _upload_error(ApiError.from_rejection(rejection), "final") from None
    if secret_from(request):
        caller = await authenticate(request)
        if caller.user_id != session.file.owner_id:
            raise _upload_error(_permission_denied("This upload belongs to another member."), "final")


async def _chunk_commands(call: _Call, version: str, session: UploadSession, key: ProxyKey) -> HttpResponse:
    request = call.request
    try:
        commands = _commands(request)
    except ApiError as error:
        raise _upload_error(error, "active", session.received) from None
    if "start" in commands:
        raise _upload_error(invalid_argument("This upload has already started."), "active", session.received)
    if commands == {"query"}:
        response = HttpResponse(status=200, content_type=JSON)
        response["X-Goog-Upload-Status"] = "active"
        response["X-Goog-Upload-Size-Received"] = str(session.received)
        return response
    if "cancel" in commands:
        await _abandon(session)
        response = HttpResponse(status=200, content_type=JSON)
        response["X-Goog-Upload-Status"] = "cancelled"
        return response
    if "upload" not in commands and commands != {"finalize"}:
        refused = invalid_argument("Invalid X-Goog-Upload-Command for an upload.")
        raise _upload_error(refused, "active", session.received)

    offset = _offset(request, session)
    length = _declared_length(request)
    declared = session.declared_size
    if declared is not None and length is not None and offset + length > declared:
        await _abandon(session)
        raise _upload_error(
            invalid_argument(
                f"The chunk at offset {offset} of {length} bytes goes past the upload's declared size of {declared} "
                "bytes; the upload is cancelled."
            ),
            "final",
        )
    if length is None or length > 0:  # None: a chunked body, of a length only reading tells
        await _take_chunk(call, session, key, offset)
    if "finalize" not in commands:
        response = HttpResponse(status=200, content_type=JSON)
        response["X-Goog-Upload-Status"] = "active"
        response["X-Goog-Upload-Size-Received"] = str(session.received)
        return response
    return await _finalize(call, version, session)


def _offset(request: HttpRequest, session: UploadSession) -> int:
    raw = request.headers.get("x-goog-upload-offset")
    if raw is None or not _OFFSET.fullmatch(raw.strip()):
        raise _upload_error(
            invalid_argument("X-Goog-Upload-Offset is missing or not a byte offset."), "active", session.received
        )
    offset = int(raw.strip())
    if offset != session.received:
        raise _upload_error(
            invalid_argument(
                f"Invalid request. The upload offset is {offset} byte(s), but {session.received} byte(s) were "
                "received so far: send from there (X-Goog-Upload-Size-Received)."
            ),
            "active",
            session.received,
        )
    return offset


async def _take_chunk(call: _Call, session: UploadSession, key: ProxyKey, offset: int) -> None:
    room = await database_sync_to_async(storage_quota.bytes_left)(key, session.file)
    # The bytes this chunk may bring: what is left of the file's bound (see _limit).
    whole = _limit(session.declared_size, room)
    name = f"uploads/{session.pk}/{offset:020d}-{secrets.token_hex(4)}"
    try:
        part = await asyncio.to_thread(storage.save, name, call.request, limit=max(0, whole - offset))
    except TooLarge:
        await _abandon(session)
        raise _upload_error(_too_large(key, whole, room), "final") from None
    if part.size == 0:
        await asyncio.to_thread(storage.delete, part.storage_name)
        return
    if not await database_sync_to_async(upload_records.advance)(session, offset, part):
        await asyncio.to_thread(storage.delete, part.storage_name)
        fresh = await database_sync_to_async(upload_records.load_session)(session.pk)
        received = fresh.received if fresh else None
        raise _upload_error(
            invalid_argument(f"Invalid request. Another chunk at offset {offset} was received first."),
            "active" if fresh else "final",
            received,
        )


async def _finalize(call: _Call, version: str, session: UploadSession) -> HttpResponse:
    declared = session.declared_size
    if declared is not None and session.received != declared:
        await _abandon(session)
        raise _upload_error(
            invalid_argument(
                f"Failed to finalize the upload: {session.received} byte(s) received, {declared} declared; "
                "the upload is cancelled."
            ),
            "final",
        )
    names = await database_sync_to_async(upload_records.part_names)(session)
    whole = await asyncio.to_thread(storage.save, f"files/{session.file_id}", storage.joined(names))
    stored = await database_sync_to_async(upload_records.finish_session)(session, whole)
    if stored is None:
        # Another finalize of this upload (a retry racing the first) finished it first.
        await asyncio.to_thread(storage.delete, whole.storage_name)
        raise _upload_error(not_found("This upload was already finalized."), "final")
    await asyncio.to_thread(_delete_all, names)
    call.record(200, request_bytes=whole.size)
    return _file_answer(call.request, version, stored, "final")


async def _abandon(session: UploadSession) -> None:
    names = await database_sync_to_async(upload_records.forget_session)(session)
    await asyncio.to_thread(_delete_all, names)


def _delete_all(names: list[str]) -> None:
    for name in names:
        storage.delete(name)
