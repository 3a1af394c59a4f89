"""How many body bytes the server reads for a request, chosen by its path before the body is read.

A limit in a view comes too late: Django's handler reads a whole body (to
memory and a temp file) before the view runs, so a 2 GiB upload without a key
would cost the process that much before the view could refuse it. The server
layer (``gemproxy_site.http_channel``) asks ``body_limit`` as soon as the
headers are in, refuses a declared ``Content-Length`` over it at once, and stops
reading a chunked body as soon as it passes it.

The table: the prefix of the decoded path (what Django routes on, less
Daphne's ``--root-path``) decides; a path under no prefix gets
the site's limit.

- ``/v1/``, ``/v1beta/``, ``/v1alpha/``: the Gemini JSON API,
  ``GEMPROXY_MAX_BODY_BYTES`` (inline images and audio make bodies large).
- ``/upload/``: Gemini's media uploads, ``GEMPROXY_MAX_UPLOAD_BODY_BYTES``.
  Until the Files API lands it is the JSON API's limit. That issue will raise it
  to Google's 2 GB per file, which is only safe together with a check of the
  proxy key when the headers are in (refuse before reading a byte). The server
  already hands a body to the application as it arrives, reading no further
  while the application is behind.
- everything else (admin, members' pages, ``/api/``, ``/healthz``, the executor
  WebSocket handshake): ``GEMPROXY_MAX_SITE_BODY_BYTES``, the order of Django's
  own ``DATA_UPLOAD_MAX_MEMORY_SIZE`` default.
"""

from __future__ import annotations

from django.conf import settings

# Each prefix with the setting that limits it, read on each call (tests
# override settings). No prefix is another's prefix, so at most one matches.
_ROUTE_LIMITS = (
    ("/v1/", "GEMPROXY_MAX_BODY_BYTES"),
    ("/v1beta/", "GEMPROXY_MAX_BODY_BYTES"),
    ("/v1alpha/", "GEMPROXY_MAX_BODY_BYTES"),
    ("/upload/", "GEMPROXY_MAX_UPLOAD_BODY_BYTES"),
)


def body_limit(path: str) -> int:
    """The most body bytes a request for ``path`` (decoded, without the root path) may send."""
    for prefix, setting in _ROUTE_LIMITS:
        if path.startswith(prefix):
            return getattr(settings, setting)
    return settings.GEMPROXY_MAX_SITE_BODY_BYTES


def payload_too_large_message(max_bytes: int) -> str:
    """Google's words for this error, which clients may show or match."""
    return f"Request payload size exceeds the limit: {max_bytes} bytes."
