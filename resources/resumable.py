"""The chunks of a resumable upload: ``upload``, ``upload, finalize``, ``query`` and ``cancel`` at its upload URL.

A chunk carries no key (Python) or its member's key (JS): the unguessable
upload id is the credential, bound to the member and the key that started
the upload, which must still be usable. Offsets advance one chunk at a time
(``upload_records.advance``); the parts are joined into the file when it is
finalised.
"""

from __future__ import annotations

import asyncio
import re
import secrets

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse

from accounts.authentication import secret_from
from accounts.models import ProxyKey
from accounts.rejections import Rejection
from gateway.answer_headers import JSON
from gateway.auth import authenticate
from gateway.errors import ApiError, invalid_argument, not_found
from resources import storage, storage_quota, upload_records
from resources.models import UploadSession
from resources.storage import TooLarge
from resources.upload_protocol import (
    UploadCall,
    declared_length,
    file_answer,
    file_limit,
    too_large,
    upload_commands,
    upload_error,
)

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OFFSET = re.compile(r"[0-9]{1,19}")


async def receive_chunk(request: HttpRequest, version: str, upload_id: str) -> HttpResponse:
    call = UploadCall(request, "files.upload")
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise upload_error(not_found("No upload session with this id."), "final")
    session = await database_sync_to_async(upload_records.load_session)(upload_id)
    if session is None:
        gone = not_found("No upload session with this id (it finished, expired or never existed).")
        raise upload_error(gone, "final")
    key = session.file.key
    if key is None:
        raise upload_error(_permission_denied("The key that started this upload was deleted."), "final")
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
        raise upload_error(ApiError.from_rejection(rejection), "final") from None
    if secret_from(request):
        caller = await authenticate(request)
        if caller.user_id != session.file.owner_id:
            raise upload_error(_permission_denied("This upload belongs to another member."), "final")


async def _chunk_commands(call: UploadCall, version: str, session: UploadSession, key: ProxyKey) -> HttpResponse:
    request = call.request
    try:
        commands = upload_commands(request)
    except ApiError as error:
        raise upload_error(error, "active", session.received) from None
    if "start" in commands:
        raise upload_error(invalid_argument("This upload has already started."), "active", session.received)
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
        raise upload_error(refused, "active", session.received)

    offset = _offset(request, session)
    length = declared_length(request)
    declared = session.declared_size
    if declared is not None and length is not None and offset + length > declared:
        await _abandon(session)
        raise upload_error(
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
        raise upload_error(
            invalid_argument("X-Goog-Upload-Offset is missing or not a byte offset."), "active", session.received
        )
    offset = int(raw.strip())
    if offset != session.received:
        raise upload_error(
            invalid_argument(
                f"Invalid request. The upload offset is {offset} byte(s), but {session.received} byte(s) were "
                "received so far: send from there (X-Goog-Upload-Size-Received)."
            ),
            "active",
            session.received,
        )
    return offset


async def _take_chunk(call: UploadCall, session: UploadSession, key: ProxyKey, offset: int) -> None:
    room = await database_sync_to_async(storage_quota.bytes_left)(key, session.file)
    # The bytes this chunk may bring: what is left of the file's bound (see file_limit).
    whole = file_limit(session.declared_size, room)
    name = f"uploads/{session.pk}/{offset:020d}-{secrets.token_hex(4)}"
    try:
        part = await asyncio.to_thread(storage.save, name, call.request, limit=max(0, whole - offset))
    except TooLarge:
        await _abandon(session)
        raise upload_error(too_large(key, whole, room), "final") from None
    if part.size == 0:
        await asyncio.to_thread(storage.delete, part.storage_name)
        return
    if not await database_sync_to_async(upload_records.advance)(session, offset, part):
        await asyncio.to_thread(storage.delete, part.storage_name)
        fresh = await database_sync_to_async(upload_records.load_session)(session.pk)
        received = fresh.received if fresh else None
        raise upload_error(
            invalid_argument(f"Invalid request. Another chunk at offset {offset} was received first."),
            "active" if fresh else "final",
            received,
        )


async def _finalize(call: UploadCall, version: str, session: UploadSession) -> HttpResponse:
    declared = session.declared_size
    if declared is not None and session.received != declared:
        await _abandon(session)
        raise upload_error(
            invalid_argument(
                f"Failed to finalize the upload: {session.received} byte(s) received, {declared} declared; "
                "the upload is cancelled."
            ),
            "final",
        )
    names = await database_sync_to_async(upload_records.part_names)(session)
    # A name of its own: finalizes racing each other must not take (or, failing, delete) one another's file.
    try:
        whole = await asyncio.to_thread(storage.save, storage.new_file_name(), storage.joined(names))
    except FileNotFoundError:
        # Another finalize of this upload finished first and deleted the parts while this one read them.
        raise _already_finalized() from None
    stored = await database_sync_to_async(upload_records.finish_session)(session, whole)
    if stored is None:
        # Another finalize of this upload (a retry racing the first) finished it first.
        await asyncio.to_thread(storage.delete, whole.storage_name)
        raise _already_finalized()
    await asyncio.to_thread(_delete_all, names)
    await call.record(200, request_bytes=whole.size)
    return file_answer(call.request, version, stored, "final")


def _already_finalized() -> ApiError:
    return upload_error(not_found("This upload was already finalized."), "final")


async def _abandon(session: UploadSession) -> None:
    names = await database_sync_to_async(upload_records.forget_session)(session)
    await asyncio.to_thread(_delete_all, names)


def _delete_all(names: list[str]) -> None:
    for name in names:
        storage.delete(name)
