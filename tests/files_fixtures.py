"""Fixtures for the Files API's tests; a test module names this in its ``pytest_plugins``."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api_doubles import Answer, asgi_call


@pytest.fixture
def file_storage(settings, tmp_path: Path) -> Path:
    """The files' storage: a fresh folder for this test (Django resets ``default_storage`` on the change)."""
    folder = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(folder)}},
    }
    return folder


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


@pytest.fixture
def upload_whole(key_header) -> Callable:
    """``await upload_whole(data)``: a resumable upload in one finalizing chunk, as the SDKs do for small files."""

    async def upload(data: bytes, display_name: str = "notes", headers: dict[str, str] | None = None) -> dict:
        started = await start_upload(headers or key_header, {"file": {"display_name": display_name}}, size=len(data))
        assert started.status == 200, started.body
        done = await send_chunk(started.headers["x-goog-upload-url"], data, 0, finalize=True)
        assert done.status == 200, done.body
        return done.json()["file"]

    return upload
