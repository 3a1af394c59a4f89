"""/favicon.ico: browsers ask for it on every page, whatever the page links."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

# The executor app's icon (frontend/index.html), as a file the admin and members' pages link too.
FAVICON = Path(settings.BASE_DIR) / "accounts" / "static" / "gemproxy" / "favicon.svg"


@cache
def _icon() -> bytes:
    return FAVICON.read_bytes()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    # An SVG under the .ico name: every current browser takes an icon by its Content-Type.
    response = HttpResponse(_icon(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
