"""The stand-in's Files API, as Google's behaves: resumable uploads, files owned by the key that uploaded them.

- ``POST /upload/{v}/files`` with ``X-Goog-Upload-Protocol: resumable`` and
  ``X-Goog-Upload-Command: start`` opens an upload and answers the absolute
  ``X-Goog-Upload-URL``; chunks go there with ``upload`` (``upload, finalize``
  for the last, or a bare ``finalize``) at ``X-Goog-Upload-Offset``, the
  bytes received so far. ``uploadType=multipart`` uploads in one request.
- A file is PROCESSING for ``processing_seconds``, then ACTIVE; it expires 48 h
  after its creation.
- A file belongs to the API key that started its upload. Another key (or none)
  gets 403 PERMISSION_DENIED for it, worded as for a file that does not exist,
  on get and delete and when a request body refers to it (``check_references``,
  for every stand-in part that reads request bodies); a generateContent naming a
  file still PROCESSING gets 400 FAILED_PRECONDITION.

The bytes are hashed as they arrive and not kept: the stand-in needs their size
and sha256, never their content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web

from executors.standin.answers import _dump_pretty
from executors.standin.errors import GoogleError

FILE_LIFETIME_SECONDS = 48 * 3600
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
CHUNK_GRANULARITY = 8 * 1024 * 1024
_ID_ALPHABET = string.ascii_lowercase + string.digits
# The tail of a file reference, whether "files/abc" or "https://host/v1beta/files/abc".
_FILE_REFERENCE = re.compile(r"(?:^|/)files/([^/?#]*)$")
# What names a Files API file: "files/{id}", or a uri whose path is /{version}/files/{id}.
_FILES_API_URI = re.compile(r"^files/[^/?#]*$|^[a-z]+://[^/]+/v1(?:beta|alpha)?/files/[^/?#]*$")
_FILE_ID = re.compile(r"[a-z0-9-]{1,40}")
# A hostile body nested deeper than this is not walked further (Google limits nesting to 100 too).
_MAX_DEPTH = 100


class FailedPrecondition(GoogleError):
    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["status"] = "FAILED_PRECONDITION"
        return body


def _no_access(file_id: str) -> GoogleError:
    return GoogleError(403, f"You do not have permission to access the File {file_id} or it may not exist.")


def _timestamp(epoch: float) -> str:
    # Google writes nanoseconds' worth of digits: 2025-01-01T12:00:00.123456Z.
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StandInFile:
    id: str
    owner: str | None  # the API key that uploaded it
    display_name: str
    mime_type: str
    size_bytes: int
    sha256_hex: str
    created: float
    uri: str
    active_at: float
    # The bytes, kept only for small files: what the stand-in reads back (a batch's input file).
    data: bytes | None = None

    @property
    def state(self) -> str:
        return "ACTIVE" if time.time() >= self.active_at else "PROCESSING"

    def resource(self) -> dict[str, Any]:
        resource: dict[str, Any] = {"name": f"files/{self.id}"}
        if self.display_name:
            resource["displayName"] = self.display_name
        resource.update(
            {
                "mimeType": self.mime_type,
                "sizeBytes": str(self.size_bytes),
                "createTime": _timestamp(self.created),
                "updateTime": _timestamp(self.created),
                "expirationTime": _timestamp(self.created + FILE_LIFETIME_SECONDS),
                # Google's sha256Hash is the base64 of the hex digest's text.
                "sha256Hash": base64.b64encode(self.sha256_hex.encode()).decode(),
                "uri": self.uri,
                "state": self.state,
                "source": "UPLOADED",
            }
        )
        return resource


@dataclass
class _Upload:
    owner: str | None
    version: str
    display_name: str
    mime_type: str
    declared_size: int | None
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    kept: bytearray | None = field(default_factory=bytearray)  # None once past KEPT_BYTES

    def take(self, data: bytes) -> None:
        self.hasher.update(data)
        self.received += len(data)
        if self.kept is not None:
            self.kept += data
            if len(self.kept) > KEPT_BYTES:
                self.kept = None


# Files up to this size keep their bytes in the stand-in (tests' inputs); larger ones only their digest.
KEPT_BYTES = 8 * 1024 * 1024


class FileStore:
    """The stand-in's files and open uploads, by id; ``lose`` makes it forget one as an expiry would."""

    def __init__(self, processing_seconds: float = 0.2) -> None:
        self.processing_seconds = processing_seconds
        self.files: dict[str, StandInFile] = {}
        self._uploads: dict[str, _Upload] = {}

    def lose(self, file_id: str) -> None:
        self.files.pop(file_id, None)

    def owned(self, name_or_uri: str, api_key: str | None) -> StandInFile:
        """The file a reference names, if ``api_key`` may use it; else Google's 403."""
        match = _FILE_REFERENCE.search(name_or_uri)
        file_id = match.group(1) if match else name_or_uri
        found = self.files.get(file_id)
        if found is None or found.owner != api_key:
            raise _no_access(file_id)
        return found

    def content(self, api_key: str | None, name_or_uri: str) -> bytes | None:
        """The bytes of a small file ``api_key`` may use, for what reads a file upstream (a batch's input)."""
        try:
            return self.owned(name_or_uri, api_key).data
        except GoogleError:
            return None

    def check_references(self, body: Any, api_key: str | None, *, need_active: bool = True) -> list[StandInFile]:
        """Every file a request body refers to (``fileData.fileUri`` at any depth), checked as Google does."""
        found = []
        for uri in file_references(body):
            if not _FILES_API_URI.search(uri):
                continue  # any other URL (public https, YouTube) Google fetches itself: not a Files API file
            stand_in_file = self.owned(uri, api_key)
            if need_active and stand_in_file.state != "ACTIVE":
                raise FailedPrecondition(
                    400, f"The File {stand_in_file.id} is not in an ACTIVE state and usage is not allowed."
                )
            found.append(stand_in_file)
        return found

    # Routes.

    def add_routes(self, app: web.Application, versions: tuple[str, ...]) -> None:
        for version in versions:
            app.router.add_post(f"/upload/{version}/files", self._upload)
            app.router.add_get(f"/{version}/files", self._list)
            app.router.add_get(f"/{version}/files/{{file_id}}", self._get)
            app.router.add_delete(f"/{version}/files/{{file_id}}", self._delete)

    async def _upload(self, request: web.Request) -> web.Response:
        version = request.path.split("/")[2]
        if "upload_id" in request.query:
            return await self._upload_chunk(request, request.query["upload_id"])
        if request.query.get("uploadType") == "multipart":
            return await self._multipart(request, version)
        if request.headers.get("X-Goog-Upload-Protocol", "").lower() != "resumable":
            raise GoogleError(400, "Upload requests must carry X-Goog-Upload-Protocol: resumable or multipart.")
        if request.headers.get("X-Goog-Upload-Command", "").lower() != "start":
            raise GoogleError(400, "A resumable upload starts with X-Goog-Upload-Command: start.")
        metadata = _file_metadata(await request.read())
        declared = request.headers.get("X-Goog-Upload-Header-Content-Length")
        if declared is not None and not declared.isdigit():
            raise GoogleError(400, "X-Goog-Upload-Header-Content-Length must be a number of bytes.")
        upload_id = secrets.token_urlsafe(24)
        self._uploads[upload_id] = _Upload(
            owner=_api_key(request),
            version=version,
            display_name=str(metadata.get("displayName") or metadata.get("display_name") or ""),
            mime_type=request.headers.get("X-Goog-Upload-Header-Content-Type")
            or str(metadata.get("mimeType") or metadata.get("mime_type") or "application/octet-stream"),
            declared_size=int(declared) if declared is not None else None,
        )
        url = f"{_origin(request)}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return web.Response(
            headers={
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
                "X-Goog-Upload-Control-URL": url,
            }
        )

    async def _upload_chunk(self, request: web.Request, upload_id: str) -> web.Response:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise GoogleError(404, "The upload session does not exist or has ended.")
        commands = {part.strip().lower() for part in request.headers.get("X-Goog-Upload-Command", "").split(",")}
        if not commands or not commands <= {"upload", "finalize", "query"}:
            raise GoogleError(400, "X-Goog-Upload-Command must be upload, finalize or query.")
        if "query" in commands:
            return web.Response(
                headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-Size-Received": str(upload.received)}
            )
        data = await request.read()
        if "upload" in commands:
            offset = request.headers.get("X-Goog-Upload-Offset", "")
            if not offset.isdigit() or int(offset) != upload.received:
                raise GoogleError(
                    400, f"Invalid X-Goog-Upload-Offset {offset[:20]!r}: {upload.received} bytes were received."
                )
            upload.take(data)
        elif data:
            raise GoogleError(400, "A finalize without upload carries no bytes.")
        if "finalize" not in commands:
            return web.Response(headers={"X-Goog-Upload-Status": "active"})
        del self._uploads[upload_id]
        if upload.declared_size is not None and upload.declared_size != upload.received:
            raise GoogleError(
                400, f"The upload declared {upload.declared_size} bytes and {upload.received} were received."
            )
        created = self._create(request, upload.version, upload, upload.hasher.hexdigest())
        return web.Response(
            body=_dump_pretty({"file": created.resource()}),
            content_type="application/json",
            charset="UTF-8",
            headers={"X-Goog-Upload-Status": "final"},
        )

    async def _multipart(self, request: web.Request, version: str) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        raw = await request.read()
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        if len(parts) != 2:
            raise GoogleError(400, "A multipart upload has a metadata part and a media part.")
        metadata = _file_metadata(_payload_of(parts[0]))
        media = _payload_of(parts[1])
        upload = _Upload(
            owner=_api_key(request),
            version=version,
            display_name=str(metadata.get("displayName") or metadata.get("display_name") or ""),
            mime_type=parts[1].get_content_type(),
            declared_size=None,
        )
        upload.take(media)
        created = self._create(request, version, upload, upload.hasher.hexdigest())
        return web.Response(body=_dump_pretty({"file": created.resource()}), content_type="application/json")

    def _create(self, request: web.Request, version: str, upload: _Upload, sha256_hex: str) -> StandInFile:
        file_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        now = time.time()
        created = StandInFile(
            id=file_id,
            owner=upload.owner,
            display_name=upload.display_name,
            mime_type=upload.mime_type,
            size_bytes=upload.received,
            sha256_hex=sha256_hex,
            created=now,
            uri=f"{_origin(request)}/{version}/files/{file_id}",
            active_at=now + self.processing_seconds,
            data=bytes(upload.kept) if upload.kept is not None else None,
        )
        self.files[file_id] = created
        return created

    async def _get(self, request: web.Request) -> web.Response:
        return _ok(self._named(request).resource())

    async def _delete(self, request: web.Request) -> web.Response:
        del self.files[self._named(request).id]
        return _ok({})

    def _named(self, request: web.Request) -> StandInFile:
        file_id = request.match_info["file_id"]
        if not _FILE_ID.fullmatch(file_id):
            raise GoogleError(400, f"Invalid file name: files/{file_id[:60]}")
        return self.owned(file_id, _api_key(request))

    async def _list(self, request: web.Request) -> web.Response:
        raw_size = request.query.get("pageSize", "")
        if raw_size and not raw_size.isdigit():
            raise GoogleError(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw_size[:40]}\"")
        page_size = min(int(raw_size or DEFAULT_PAGE_SIZE) or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        token = request.query.get("pageToken") or "0"
        if not token.isdigit():
            raise GoogleError(400, "Invalid page token.")
        mine = sorted(
            (f for f in self.files.values() if f.owner == _api_key(request)), key=lambda f: f.created, reverse=True
        )
        start = int(token)
        page: dict[str, Any] = {}
        if mine[start : start + page_size]:
            page["files"] = [f.resource() for f in mine[start : start + page_size]]
        if start + page_size < len(mine):
            page["nextPageToken"] = str(start + page_size)
        return _ok(page)


def file_references(body: Any) -> Iterator[str]:
    """Every ``fileData.fileUri`` (camel or snake case) in a JSON body, depth-first, bounded in depth."""
    stack: list[tuple[Any, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("fileData", "file_data") and isinstance(value, dict):
                    uri = value.get("fileUri", value.get("file_uri"))
                    if isinstance(uri, str):
                        yield uri
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)


def _file_metadata(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise GoogleError(400, "Invalid JSON payload received.") from None
    inner = parsed.get("file") if isinstance(parsed, dict) else None
    return inner if isinstance(inner, dict) else {}


def _payload_of(part: Any) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _api_key(request: web.Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query.get("key")


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _ok(payload: Any) -> web.Response:
    return web.Response(body=_dump_pretty(payload), content_type="application/json", charset="UTF-8")
