"""Requests of the Files API's upload protocols, as the SDKs send them, through the real ASGI app."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from tests.api_doubles import Answer, asgi_call


def stored_files(folder: Path) -> list[Path]:
    """Every file the storage holds, parts included."""
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def sha256_field(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


async def start_upload(
    headers: dict[str, str], metadata: dict, *, size: int | None, mime: str = "text/plain"
) -> Answer:
    """The SDKs' start request; ``size`` None leaves the length undeclared."""
    start_headers = {
        **headers,
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-type": mime,
        "content-type": "application/json",
    }
    if size is not None:
        start_headers["x-goog-upload-header-content-length"] = str(size)
    return await asgi_call("POST", "/upload/v1beta/files", headers=start_headers, body=json.dumps(metadata).encode())


def upload_query(url: str) -> str:
    """The query of an upload URL, for ``asgi_call`` (which takes the path and query apart)."""
    return url.split("?", 1)[1]


async def send_chunk(
    url: str, data: bytes, offset: int, *, finalize: bool = False, headers: dict[str, str] | None = None
) -> Answer:
    return await asgi_call(
        "POST",
        "/upload/v1beta/files",
        query=upload_query(url),
        headers={
            **(headers or {}),
            "x-goog-upload-command": "upload, finalize" if finalize else "upload",
            "x-goog-upload-offset": str(offset),
        },
        body=data,
    )
