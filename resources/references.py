"""The proxy's files a request body refers to, checked against their owner, and rewritten for one account.

A reference is ``fileData.fileUri`` (or ``file_data.file_uri``, Google accepts
both) anywhere in the body, naming ``files/{id}`` or the gateway's full uri
``{origin}/{version}/files/{id}``. Any other uri (a YouTube link, a file of the
member's own Google account) is not the proxy's and passes untouched.

Google's answers are kept: a file the member does not own, or that does not
exist (any more), is 403 PERMISSION_DENIED worded as Google words it, so that
nobody learns whether another member's file exists; one not ACTIVE yet is 400
FAILED_PRECONDITION; a name that cannot be a file's is 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from gateway.errors import ApiError
from resources.models import Placement, StoredFile

FILE_MARKERS = (b"fileUri", b"file_uri")
# Google accepts up to 3,000 files in one prompt; a body naming more is refused before any lookup.
MAX_FILES_PER_REQUEST = 3000
_FILE_ID = re.compile(r"[a-z0-9]{1,40}")
_GATEWAY_FILE_PATH = re.compile(r"/v1(?:beta|alpha)?/files/([^/]*)")


@dataclass(frozen=True)
class Reference:
    """One place in a parsed body naming a proxy resource: ``holder[key]`` holds its name or uri."""

    resource_id: str
    holder: dict
    key: str


def parse(body: bytes) -> Any:
    """The body as JSON, refusing what could not be written back as the same JSON (an infinite number)."""

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value

    try:
        return json.loads(body, parse_float=finite, parse_constant=_no_constant)
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def serialized(body: Any) -> bytes:
    # ASCII escapes keep even a lone surrogate the client sent ("\ud800") valid JSON.
    return json.dumps(body, separators=(",", ":")).encode()


def file_references(body: Any, origins: Collection[str]) -> list[Reference]:
    """Every reference in ``body`` to a proxy file, in document order."""
    found = []
    for holder, key in _file_uri_holders(body):
        file_id = proxy_file_id(holder[key], origins)
        if file_id is not None:
            found.append(Reference(file_id, holder, key))
    return found


def _file_uri_holders(body: Any) -> Iterator[tuple[dict, str]]:
    # Iterative: gateway.payload bounds the depth, and a loop costs no recursion either way.
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name in ("fileData", "file_data"):
                data = node.get(name)
                if isinstance(data, dict):
                    for key in ("fileUri", "file_uri"):
                        if isinstance(data.get(key), str):
                            yield data, key
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def proxy_file_id(uri: str, origins: Collection[str]) -> str | None:
    """The id in ``files/{id}`` or in a gateway file uri; None for a uri that is not the proxy's."""
    if uri.startswith("files/"):
        return uri[len("files/") :]
    parts = urlsplit(uri)
    if f"{parts.scheme}://{parts.netloc}" not in origins or parts.query or parts.fragment:
        return None
    match = _GATEWAY_FILE_PATH.fullmatch(parts.path)
    return match.group(1) if match else None


def gateway_origins(request: HttpRequest) -> set[str]:
    """The origins a full file uri of this gateway may carry: its public one, and the one this call came to.

    The Host header as sent, not ``get_host()``: API calls are served whatever
    their Host, and it only widens which spellings of the member's own file uris
    are recognised; ownership is checked all the same.
    """
    origins = {f"{request.scheme}://{request.META.get('HTTP_HOST', '')}"}
    if settings.PUBLIC_BASE_URL:
        parts = urlsplit(settings.PUBLIC_BASE_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def rewrite_for(body: Any, placed: Mapping[str, Placement], origins: Collection[str]) -> Any:
    """``body`` with each reference to a proxy file replaced by that file's upstream uri on one account."""
    for reference in file_references(body, origins):
        reference.holder[reference.key] = placed[reference.resource_id].upstream_uri
    return body


def _no_access(file_id: str) -> ApiError:
    return ApiError(
        403, "PERMISSION_DENIED", f"You do not have permission to access the File {file_id} or it may not exist."
    )


def _load(ids: list[str]) -> dict[str, StoredFile]:
    return {stored.id: stored for stored in StoredFile.objects.filter(id__in=ids)}


async def owned_files(ids: Collection[str], member_id: int) -> dict[str, StoredFile]:
    """The member's usable files by id, or Google's refusal for the first that is not."""
    if len(set(ids)) > MAX_FILES_PER_REQUEST:
        raise ApiError(400, "INVALID_ARGUMENT", f"A request may refer to at most {MAX_FILES_PER_REQUEST} files.")
    for file_id in ids:
        if not _FILE_ID.fullmatch(file_id):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid file name: files/{file_id[:60]!r}.")
    found = await sync_to_async(_load)(sorted(set(ids)))
    now = timezone.now()
    for file_id in ids:
        stored = found.get(file_id)
        if stored is None or stored.owner_id != member_id or stored.expires_at <= now:
            raise _no_access(file_id)
        if stored.state != StoredFile.State.ACTIVE or not stored.storage_name:
            raise ApiError(
                400,
                "FAILED_PRECONDITION",
                f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
            )
    return found
