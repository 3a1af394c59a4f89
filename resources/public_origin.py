"""The gateway's origin as clients reach it: where upload URLs and file uris point."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def public_origin(request: HttpRequest) -> str:
    """``PUBLIC_BASE_URL`` (behind a proxy that rewrites the host, the only trustworthy answer), else the request's."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    return f"{request.scheme}://{request.get_host()}"
