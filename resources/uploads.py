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
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse

from accounts.models import ProxyKey
from gateway.answer_headers import JSON
from gateway.errors import invalid_argument
from gateway.payload import checked_body
from resources import storage, storage_quota, sweep, upload_records
from resources.file_metadata import file_fields, parse_metadata
from resources.multipart import MalformedMultipart, RelatedParts, boundary_of
from resources.public_origin import public_origin
from resources.resumable import receive_chunk
from resources.storage import TooLarge, Written
from resources.upload_protocol import (
    UploadCall,
    declared_length,
    file_answer,
    file_limit,
    too_large,
    upload_api,
    upload_commands,
)


def _query(request: HttpRequest) -> dict[str, str]:
    # The first of each name; the raw string, so that a flood of fields costs nothing.
    fields: dict[str, str] = {}
    for name, value in parse_qsl(request.META.get("QUERY_STRING", "")[:4096], keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def _upload_url(request: HttpRequest, version: str, upload_id: str) -> str:
    return f"{public_origin(request)}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"


@upload_api
async def upload_files(request: HttpRequest, version: str) -> HttpResponse:
    sweep.ensure_running()
    query = _query(request)
    if "upload_id" in query:
        return await receive_chunk(request, version, query["upload_id"])
    protocol = (request.headers.get("x-goog-upload-protocol") or query.get("uploadType") or "").lower()
    if protocol == "resumable":
        call = UploadCall(request, "files.upload")
        return await call.run(lambda: _start(call, version))
    if protocol == "multipart":
        call = UploadCall(request, "files.upload")
        return await call.run(lambda: _multipart(call, version))
    if protocol in ("media", "raw"):
        call = UploadCall(request, "files.upload")
        return await call.run(lambda: _media(call, version))
    call = UploadCall(request, "files.upload")

    async def unknown() -> HttpResponse:
        await call.admit()  # a caller without a valid key learns only that
        raise invalid_argument(
            "Unknown upload protocol: send X-Goog-Upload-Protocol: resumable, "
            "or uploadType=multipart or uploadType=media."
        )

    return await call.run(unknown)


async def _start(call: UploadCall, version: str) -> HttpResponse:
    request = call.request
    key = await call.admit()
    if upload_commands(request) != {"start"}:
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


async def _multipart(call: UploadCall, version: str) -> HttpResponse:
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
        limit = file_limit(fields.size, room)
        try:
            written = storage.save(storage.new_file_name(), parts.media(), limit=limit)
        except MalformedMultipart as error:
            raise invalid_argument(str(error)) from None
        except TooLarge:
            raise too_large(key, limit, room) from None
        return fields, _checked_size(fields.size, written)

    fields, written = await asyncio.to_thread(receive)
    call.event.request_bytes = written.size
    return await _store_whole(call, key, version, fields, written)


async def _media(call: UploadCall, version: str) -> HttpResponse:
    request = call.request
    key = await call.admit()
    fields = file_fields(
        {},
        header_size=None,
        header_type=request.headers.get("content-type") or "application/octet-stream",
    )
    declared = declared_length(request)
    await database_sync_to_async(storage_quota.check_new_file)(key, declared)
    room = await database_sync_to_async(storage_quota.bytes_left)(key)

    def receive() -> Written:
        limit = file_limit(declared, room)
        try:
            written = storage.save(storage.new_file_name(), request, limit=limit)
        except TooLarge:
            raise too_large(key, limit, room) from None
        return _checked_size(declared, written)

    written = await asyncio.to_thread(receive)
    call.event.request_bytes = written.size
    return await _store_whole(call, key, version, fields, written)


def _checked_size(declared: int | None, written: Written) -> Written:
    if declared is not None and written.size != declared:
        storage.delete(written.storage_name)
        raise invalid_argument(f"The upload declared {declared} bytes but sent {written.size}.")
    return written


async def _store_whole(
    call: UploadCall, key: ProxyKey, version: str, fields: upload_records.FileFields, written: Written
) -> HttpResponse:
    try:
        stored = await database_sync_to_async(upload_records.create_whole)(key, fields, written)
    except BaseException:
        await asyncio.to_thread(storage.delete, written.storage_name)
        raise
    await call.record(200, request_bytes=written.size)
    # One request carried it all: the answer is the finished upload's.
    return file_answer(call.request, version, stored, "final")
