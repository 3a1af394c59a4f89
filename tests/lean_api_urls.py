"""A URLconf of views that show what ApiHandler does around a view (tests/test_api_handler.py)."""

from __future__ import annotations

import asyncio
import io

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import path

seen: dict = {}
started = asyncio.Event()


async def slow(request: HttpRequest) -> HttpResponse:
    started.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen["cancelled"] = True
        raise
    return HttpResponse("late")


def sync_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"body": request.body.decode(), "path": request.path})


async def download(request: HttpRequest) -> HttpResponse:
    seen["file"] = io.BytesIO(b"file bytes")
    return FileResponse(seen["file"])


urlpatterns = [
    path("v1beta/slow", slow),
    path("v1beta/sync", sync_view),
    path("v1beta/download", download),
]
