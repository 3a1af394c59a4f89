"""Fixtures for the Files API's tests; a test module names this in its ``pytest_plugins``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.files_client import send_chunk, start_upload


@pytest.fixture
def file_storage(settings, tmp_path: Path) -> Path:
    """The files' storage: a fresh folder for this test (Django resets ``default_storage`` on the change)."""
    folder = tmp_path / "files"
    settings.GEMPROXY_FILES_SWEEP_INTERVAL = 0  # the tests sweep when they choose
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(folder)}},
    }
    return folder


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
