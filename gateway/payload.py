"""The request body: refused unless it is one the upstream could accept; otherwise passed on untouched.

Nesting is bounded before the JSON parser sees the body, and answered with
Google's words. The bound, 100 levels, is that of Google's own parser
(protobuf's default recursion limit is 100, and a JSON object under
``functionCall.args`` or a ``Struct`` costs it two of its levels per JSON
level), far above what real requests need (a function declaration's schema
twenty properties deep is about 45 levels) and far below what a recursive
parser copes with.
"""

from __future__ import annotations

import operator
from itertools import accumulate, count

import orjson
from django.conf import settings
from django.http import HttpRequest
from django.http.request import RequestDataTooBig

from gateway.errors import ApiError, invalid_argument
from gemproxy_site.body_limits import payload_too_large_message

MAX_NESTING = 100

_NOT_A_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
# An opening bracket weighs 2 and a closing one 0, so that after n brackets
# the running sum minus n is the depth; all in C, however long the body.
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body``, without parsing (or recursing into) it."""
    # Outside strings JSON has no backslash, so dropping escaped backslashes and then
    # escaped quotes leaves only the quotes that delimit strings; every other piece
    # between them is outside the strings.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"".join(unescaped.split(b'"')[::2])
    brackets = structure.translate(None, _NOT_A_BRACKET).translate(_WEIGHTS)
    return max(map(operator.sub, accumulate(brackets), count(1)), default=0)


def _too_large() -> ApiError:
    return invalid_argument(payload_too_large_message(settings.GEMPROXY_MAX_BODY_BYTES))


def checked_body(request: HttpRequest) -> bytes:
    """The body, if it is one the upstream could accept; never forwarded otherwise."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > settings.GEMPROXY_MAX_BODY_BYTES:
        raise _too_large()
    try:
        body = request.body
    except RequestDataTooBig:  # sent without a Content-Length, and larger than Django accepts
        raise _too_large() from None
    if len(body) > settings.GEMPROXY_MAX_BODY_BYTES:
        raise _too_large()
    if request.method in ("GET", "DELETE"):
        return b""  # SDKs may send "{}" here; the upstream needs nothing
    if nesting_depth(body) > MAX_NESTING:
        raise invalid_argument(
            f"Invalid JSON payload received. The payload nests deeper than {MAX_NESTING} levels of arrays and objects."
        )
    try:
        # orjson, like Google's parser, refuses NaN, Infinity and numbers no double can hold.
        parsed = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as error:
        raise invalid_argument(f"Invalid JSON payload received. {error}.") from None
    if not isinstance(parsed, dict):
        raise invalid_argument("Invalid JSON payload received. The request body must be a JSON object.")
    return body
