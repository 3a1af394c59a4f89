"""The browser executor app (frontend/dist), served at /executor/.

For local use and tests: in production the same files are pasted into
Google AI Studio (see docs/browser-executor.md). Include with
``path("", include("executors.webapp"))`` in the root URLconf.
"""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified, HttpResponsePermanentRedirect
from django.urls import get_script_prefix, path
from django.utils.html import escape
from django.utils.http import http_date
from django.views.decorators.http import require_safe
from django.views.static import was_modified_since

# Vite names the files under assets/ after a hash of their content: a changed
# file gets a new name, so these may be cached for good. index.html must be
# revalidated every time, or a browser keeps loading yesterday's assets.
HASHED_ASSETS_DIR = "assets/"
CACHE_HASHED = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"

# Explicit, because SecurityMiddleware sends nosniff and the system's
# mimetypes tables differ between machines.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

NOT_BUILT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gemproxy executor: not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
code,pre{background:#f1f3f4;border-radius:4px;padding:.1em .3em}pre{padding:.8em}</style></head>
<body><h1>The executor app has not been built</h1>
<p>This gateway serves the browser executor from <code>frontend/dist</code>, which does not exist yet.
Build it once with Node.js 20.19 or later:</p>
<pre>cd frontend
npm ci
npm run build</pre>
<p>Then reload this page. See <code>docs/browser-executor.md</code>.</p></body></html>
"""


# The app reads its gateway URL from this tag (frontend/src/settings.ts, servedGateway).
GATEWAY_META = '<meta name="gemproxy-gateway" content="{url}" />'
INDEX = "index.html"


def gateway_url(request: HttpRequest) -> str:
    """PUBLIC_BASE_URL when set (as on the members' pages), else this gateway as the browser reached it."""
    # get_host() checks ALLOWED_HOSTS: a forged Host header gets a 400, never a page that names it.
    return getattr(settings, "PUBLIC_BASE_URL", "") or request.build_absolute_uri(get_script_prefix()).rstrip("/")


def with_gateway_url(page: bytes, url: str) -> bytes:
    """index.html with the gateway's URL for the app's settings, placed first in <head>."""
    tag = GATEWAY_META.format(url=escape(url)).encode()
    head = page.find(b"<head>")
    if head < 0:
        return page
    at = head + len(b"<head>")
    return page[:at] + b"\n    " + tag + page[at:]


def dist_dir() -> Path:
    return Path(settings.BASE_DIR) / "frontend" / "dist"


@dataclass(frozen=True)
class AppFile:
    path: Path
    mtime: float
    content_type: str


def _find(root: Path, asset: str) -> AppFile | None:
    """The file for ``asset`` inside ``root``; None if the app is not built. Refuses anything outside ``root``."""
    if not (root / "index.html").is_file():
        return None
    try:
        candidate = (root / asset).resolve()
        found = candidate.is_relative_to(root.resolve()) and candidate.is_file()
    except (OSError, ValueError) as exc:  # NUL bytes, symlink loops, names longer than the file system takes
        raise Http404 from exc
    if not found:
        raise Http404
    guessed = CONTENT_TYPES.get(candidate.suffix.lower()) or mimetypes.guess_type(candidate.name)[0]
    return AppFile(candidate, candidate.stat().st_mtime, guessed or "application/octet-stream")


# Async, with the file system touched in a worker thread: sync views here
# would run on the one thread the executor consumers share.
@require_safe
async def executor_app(request: HttpRequest, asset: str = "") -> HttpResponse:
    file = await asyncio.to_thread(_find, dist_dir(), asset or INDEX)
    if file is None:
        return HttpResponse(NOT_BUILT, status=503, content_type="text/html; charset=utf-8")

    if not was_modified_since(request.META.get("HTTP_IF_MODIFIED_SINCE"), file.mtime):
        response: HttpResponse = HttpResponseNotModified()
    else:
        # The files are small (the whole app is a few hundred kB); a plain
        # response avoids FileResponse's sync iterator, which ASGI buffers anyway.
        content = await asyncio.to_thread(file.path.read_bytes)
        if file.path.name == INDEX and file.path.parent == dist_dir().resolve():
            content = with_gateway_url(content, gateway_url(request))
        response = HttpResponse(content, content_type=file.content_type)
    response["Last-Modified"] = http_date(file.mtime)
    response["Cache-Control"] = CACHE_HASHED if asset.startswith(HASHED_ASSETS_DIR) else CACHE_REVALIDATE
    # The token may travel in the URL fragment; never let it leak through a Referer.
    response["Referrer-Policy"] = "no-referrer"
    return response


def add_slash(request: HttpRequest) -> HttpResponse:
    # The app loads its assets relative to /executor/; without the slash they would miss.
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))


urlpatterns = [
    path("executor", add_slash),
    path("executor/", executor_app),
    path("executor/<path:asset>", executor_app),
]
