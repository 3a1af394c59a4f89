"""The headers of an API answer: which an executor may set, and which every answer carries.

An executor is not trusted with the answer's headers: the answer is served
from the gateway's own origin, so a ``text/html`` body from an executor would
run as a page of the gateway. Only the content types the API uses pass:
JSON, and server-sent events for ``alt=sse``. Any other type (or none) is
relabelled as JSON rather than treated as a fault of the executor: the body is
the upstream's answer and is relayed untouched as always (Google answers these
methods in JSON or SSE only, so another type comes from something in between,
such as a proxy's error page, and the client's JSON parser reports it); with
``nosniff`` a browser never renders it as anything but data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import parse_http_date_safe

JSON = "application/json; charset=UTF-8"
SSE = "text/event-stream"
_CONTENT_TYPES = {"application/json": JSON, "text/event-stream": SSE}

# Header values from an executor: printable ASCII and spaces, bounded.
_VALUE = re.compile(r"[\x20-\x7e]{1,256}")
_SECONDS = re.compile(r"[0-9]{1,9}")

# The browser-based tools that call the API (web chat UIs) send the key in a
# header, never in a cookie, so answering any origin exposes nothing a page
# could not already send; without credentials, "*" is what CORS allows.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": ", ".join(
        (
            "retry-after",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-requests-day",
            "x-ratelimit-remaining-requests-day",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
            "x-ratelimit-limit-tokens-day",
            "x-ratelimit-remaining-tokens-day",
            "x-ratelimit-limit-concurrent",
            "x-ratelimit-remaining-concurrent",
            "x-goog-upload-url",
            "x-goog-upload-status",
            "x-goog-upload-chunk-granularity",
            "x-goog-upload-size-received",
        )
    ),
}


# What the SDKs and tools send; a preflight also allows any other well-formed
# names it asks for, so that a new SDK header does not break browsers.
ALLOWED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "x-goog-api-key",
    "x-goog-api-client",
    "x-goog-user-project",
    "x-server-timeout",
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-offset",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
)
ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
_HEADER_NAMES = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
_PREFLIGHT_MAX_AGE = "86400"


def preflight(request: HttpRequest) -> HttpResponse:
    """204 to a CORS preflight (or any OPTIONS) under an API prefix; no key is needed for it."""
    allowed = list(ALLOWED_REQUEST_HEADERS)
    asked = request.headers.get("access-control-request-headers", "").strip()
    if len(asked) <= 2048 and _HEADER_NAMES.fullmatch(asked):
        allowed += [name for name in (part.strip().lower() for part in asked.split(",")) if name not in allowed]
    response = HttpResponse(status=204)
    del response["Content-Type"]
    response["Allow"] = ALLOWED_METHODS
    response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response["Access-Control-Allow-Headers"] = ", ".join(allowed)
    response["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
    response["Vary"] = "Access-Control-Request-Headers"
    return response


def content_type(value: object) -> str:
    """The executor's content type if the API uses it (normalised), JSON's otherwise."""
    media_type = value.split(";", 1)[0].strip().lower() if isinstance(value, str) else ""
    return _CONTENT_TYPES.get(media_type, JSON)


def _retry_after(value: str) -> str | None:
    if _SECONDS.fullmatch(value) or parse_http_date_safe(value) is not None:
        return value
    return None


# Each header an executor may set, and the check its value must pass.
_RELAYED = {"retry-after": _retry_after}


def relayed_headers(executor_headers: dict[str, str]) -> dict[str, str]:
    """The executor's headers that reach the client: the content type, and allowed names with sound values."""
    received = {name.lower(): value for name, value in executor_headers.items() if isinstance(name, str)}
    relayed = {"Content-Type": content_type(received.get("content-type"))}
    for name, check in _RELAYED.items():
        value = received.get(name)
        if isinstance(value, str) and _VALUE.fullmatch(value):
            checked = check(value)
            if checked is not None:
                relayed[name] = checked
    return relayed


def mark_api_answer(response: HttpResponseBase) -> HttpResponseBase:
    """What every answer under an API prefix carries, errors and streams included."""
    store = response.headers._store  # see set_headers
    store["x-content-type-options"] = _NOSNIFF
    for name, entry in _CORS_ENTRIES:
        store.setdefault(name, entry)
    return response


def set_headers(response: HttpResponseBase, headers: Mapping[str, str]) -> None:
    """``response[name] = value`` for each header, checked at once rather than one by one.

    A relayed answer carries about twenty headers: the rate limits, CORS, the
    request id. Django's ``ResponseHeaders`` checks each name and value with
    several Python calls (measured: about 160 k of a call's 2,850 k
    instructions, with its ``send_response`` reading them back). Here, when
    every name and value is printable ASCII (which Django's checks let through
    unchanged), they are stored the way Django stores them: the lower-cased
    name to the name and value (``tests/test_answer_headers.py`` holds Django to it). Anything else
    (a line break, a non-ASCII value, a value that is not text) goes through
    Django's own setter, which refuses it or encodes it as before.
    """
    try:
        names, values = "".join(headers), "".join(headers.values())
    except TypeError:  # a name or value that is not text
        names = values = "\n"
    if names.isascii() and names.isprintable() and values.isascii() and values.isprintable():
        response.headers._store.update({name.lower(): (name, value) for name, value in headers.items()})
        return
    for name, value in headers.items():
        response[name] = value


_NOSNIFF = ("X-Content-Type-Options", "nosniff")
_CORS_ENTRIES = tuple((name.lower(), (name, value)) for name, value in CORS_HEADERS.items())
