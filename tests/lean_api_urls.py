"""A URLconf of views that show what ApiHandler does around a view (tests/test_api_handler.py)."""

from __future__ import annotations

import asyncio
import io

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
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


async def stream(request: HttpRequest) -> HttpResponse:
    """Two pieces, the second once the test sets ``go_on``; the body it was sent is read first, as the relay does."""
    seen["request"], seen["body_read"] = request, request.body

    async def pieces():
        yield b"data: 1\r\n\r\n"
        await go_on.wait()
        yield b"data: 2\r\n\r\n"

    response = StreamingHttpResponse(pieces(), content_type="text/event-stream")
    response["X-Stream"] = "held"
    response.set_cookie("seen", "yes")
    seen["response"] = response
    return response


go_on = asyncio.Event()

urlpatterns = [
    path("v1beta/slow", slow),
    path("v1beta/sync", sync_view),
    path("v1beta/download", download),
    path("v1beta/stream", stream),
]
