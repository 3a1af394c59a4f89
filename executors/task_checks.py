"""What an executor accepts from the gateway: task frames of the protocol's types, whose path and query
keep their meaning when they are put into the upstream URL.

The executor trusts the gateway's choice of call, not its bytes: a path with '?', '#', '%' or a dot
segment, or a query that smuggles in a `key`, would make the upstream see another request than the
gateway asked for. Such a task is refused with `bad_task` (BadTask here). Pure functions, no Django:
the headless agent imports this module, and frontend/src/taskChecks.ts holds the same rules.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from executors import protocol

# Methods the Gemini API uses; anything else is not a call the gateway relays.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
# Attempt ids are UUIDs; a bound keeps an echoed id from inflating frames and log lines.
MAX_ID_LENGTH = 128
MAX_PATH_LENGTH = 2048
MAX_QUERY_LENGTH = 16 * 1024
# The largest body a task may announce: 2 GiB, the Files API's limit per file.
MAX_BODY_CHUNKS = (2 * 1024 * 1024 * 1024) // protocol.BODY_CHUNK_BYTES

_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")
_PATH_CHARACTER = re.compile(r"[A-Za-z0-9\-._~:/]")
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/]*")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9\-._~:]+")
# The API's versions, optionally behind the media prefixes Google uses for uploads and downloads.
_PATH_PREFIX = re.compile(r"/(?:(?:upload|download)/)?v1(?:beta|alpha)?/")
# RFC 3986's query characters: no '#', space, control or non-ASCII character.
_QUERY_CHARACTER = re.compile(r"[A-Za-z0-9\-._~!$'()*+,;:@/?=&%]")
_QUERY_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~!$'()*+,;:@/?=&%]*")
# Names and values are made of them less '&' and '=' (the structure), with '%' only in an escape;
# a '?' in a name would mean a second '?' in the URL: a gateway bug, refused.
_QUERY_NAME = r"(?:[A-Za-z0-9\-._~!$'()*+,;:@/]|%[0-9A-Fa-f]{2})+"
# A value may hold '=': parsers split at the first one, and page tokens are base64.
_QUERY_VALUE = r"(?:[A-Za-z0-9\-._~!$'()*+,;:@/?=]|%[0-9A-Fa-f]{2})*"
_QUERY_PART = re.compile(f"{_QUERY_NAME}={_QUERY_VALUE}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, spaces and tabs, and (obs-text) Latin-1 above 0x7f, but no CR, LF, NUL or other controls.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class BadTask(ValueError):
    """A task frame the executor must not perform; the message says why, without echoing secrets."""


def shown(character: str) -> str:
    """A character as a message shows it: quoted when visible ASCII, else its code point (no raw CR/LF)."""
    return f"'{character}'" if "!" <= character <= "~" else f"U+{ord(character):04X}"


def is_task_id(value: object) -> bool:
    """Whether value can be a task's id: a short string of visible ASCII."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _first_not_allowed(text: str, allowed: re.Pattern) -> str:
    return next(character for character in text if not allowed.fullmatch(character))


def path_problem(path: str) -> str | None:
    """Why path cannot go into the upstream URL as it is, or None when it can."""
    if len(path) > MAX_PATH_LENGTH:
        return f"path is longer than {MAX_PATH_LENGTH} characters"
    # One match for the whole path; the character-by-character search only to name the culprit.
    if not _PATH_CHARACTERS.fullmatch(path):
        return f"path has a character that is not allowed: {shown(_first_not_allowed(path, _PATH_CHARACTER))}"
    prefix = _PATH_PREFIX.match(path)
    if prefix is None:
        return "path must start with /v1/, /v1beta/ or /v1alpha/ (or /upload/ or /download/ before them)"
    for segment in path[prefix.end() :].split("/"):
        if segment in ("", ".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            return "path has an empty, '.' or '..' segment"
    return None


def query_problem(query: str) -> str | None:
    """Why query cannot go into the upstream URL as it is, or None when it can."""
    if query == "":
        return None
    if len(query) > MAX_QUERY_LENGTH:
        return f"query is longer than {MAX_QUERY_LENGTH} characters"
    if not _QUERY_CHARACTERS.fullmatch(query):
        return f"query has a character that is not allowed: {shown(_first_not_allowed(query, _QUERY_CHARACTER))}"
    for number, part in enumerate(query.split("&"), start=1):
        if not _QUERY_PART.fullmatch(part):
            return f"query part {number} is not name=value with percent-encoded name and value"
        name = unquote_to_bytes(part.partition("=")[0].replace("+", " "))
        if name.strip().lower() == b"key":
            # The executor adds its own credentials; a key from the task would replace or join them.
            return "query carries 'key': the executor adds its own credentials"
    return None


def header_problem(headers: object) -> str | None:
    """Why headers are not a map of HTTP header names to single-line values, or None."""
    if not isinstance(headers, dict):
        return "headers must be an object"
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            return "headers has a name that is not an HTTP token"
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            return f"header {name!r} must be a string without control characters"
    return None


def read_request(frame: Mapping[str, Any]) -> protocol.Request:
    """The request frame with its fields checked (the method upper-cased); raises BadTask."""
    method, path, query = frame.get("method"), frame.get("path"), frame.get("query")
    if query is None:
        query = ""
    headers, body_chunks = frame.get("headers"), frame.get("body_chunks")
    if headers is None:
        headers = {}
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise BadTask(f"method must be one of {', '.join(sorted(METHODS))}")
    if not isinstance(path, str):
        raise BadTask("path must be a string")
    if not isinstance(query, str):
        raise BadTask("query must be a string")
    if not isinstance(body_chunks, int) or isinstance(body_chunks, bool) or body_chunks < 0:
        raise BadTask("body_chunks must be a non-negative integer")
    if body_chunks > MAX_BODY_CHUNKS:
        raise BadTask(f"body_chunks must be at most {MAX_BODY_CHUNKS}")
    problem = path_problem(path) or query_problem(query) or header_problem(headers)
    if problem:
        raise BadTask(problem)
    request = protocol.Request(
        type="request",
        id=frame["id"],
        method=method.upper(),
        path=path,
        query=query,
        headers=headers,
        body_chunks=body_chunks,
    )
    # Only for the log: one that is not a short visible-ASCII string is left out, not refused.
    request_id = frame.get("request_id")
    if isinstance(request_id, str) and _ID.fullmatch(request_id):
        request["request_id"] = request_id
    return request


def read_body_piece(frame: Mapping[str, Any], expected_seq: int) -> bytes:
    """The bytes of a request_body frame that must be piece expected_seq; raises BadTask."""
    seq, data = frame.get("seq"), frame.get("data")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadTask("seq must be an integer")
    if seq != expected_seq:
        raise BadTask(f"body piece {seq} arrived, {expected_seq} expected")
    if isinstance(data, bytes):  # a binary frame's raw bytes: JSON text never produces bytes
        piece = data
    # Strict: the lenient decoder skips stray characters and so would corrupt the body silently.
    elif not isinstance(data, str) or not _BASE64.fullmatch(data):
        raise BadTask(f"body piece {seq} is not padded standard base64")
    else:
        try:
            piece = base64.b64decode(data, validate=True)
        except binascii.Error as exc:  # the pattern above should already have refused it
            raise BadTask(f"body piece {seq} is not padded standard base64") from exc
    if len(piece) > protocol.BODY_CHUNK_BYTES:
        raise BadTask(f"body piece {seq} is larger than {protocol.BODY_CHUNK_BYTES} bytes")
    return piece
