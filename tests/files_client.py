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


async def send_chunk_unsized(url: str, data: bytes, offset: int, *, finalize: bool = False) -> Answer:
    """A chunk sent with ``Transfer-Encoding: chunked``: no Content-Length, in several ASGI body messages."""
    from asgiref.testing import ApplicationCommunicator

    from gemproxy_site.handlers import http_application

    command = "upload, finalize" if finalize else "upload"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload/v1beta/files",
        "raw_path": b"/upload/v1beta/files",
        "root_path": "",
        "query_string": upload_query(url).encode(),
        "headers": [
            (b"x-goog-upload-command", command.encode()),
            (b"x-goog-upload-offset", str(offset).encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    app = ApplicationCommunicator(http_application(), scope)
    half = len(data) // 2
    await app.send_input({"type": "http.request", "body": data[:half], "more_body": True})
    await app.send_input({"type": "http.request", "body": data[half:], "more_body": False})
    start = await app.receive_output(10)
    chunks = []
    while True:
        message = await app.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return Answer(start["status"], headers, b"".join(chunks))
