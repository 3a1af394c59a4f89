"""How answer bodies reach the client: whole events only, errors in Google's framing.

The gateway passes upstream bytes through untouched, but only at event
boundaries, so an executor that cuts a chunk mid-event (or dies there) never
leaves a client parser holding half an event when an error follows. It reads
nothing from the body but the last ``usageMetadata``.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

from gateway.errors import ApiError

_USAGE_KEY = b'"usageMetadata"'
_USAGE_TAIL_LIMIT = 64 * 1024
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_DECODER = json.JSONDecoder()


class UsageTracker:
    """Keeps just enough of a body to read its last ``usageMetadata`` object at the end."""

    def __init__(self) -> None:
        self._carry = b""
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        window = self._carry + chunk
        found = window.rfind(_USAGE_KEY)
        if found >= 0:
            self._tail = window[found:]
        elif self._tail and len(self._tail) < _USAGE_TAIL_LIMIT:
            self._tail += chunk
        self._carry = window[-len(_USAGE_KEY) :]

    def usage(self) -> dict:
        start = self._tail.find(b"{")
        if start < 0:
            return {}
        try:
            # The object from its brace to its end, read by the C parser, strings and all.
            value, _ = _DECODER.raw_decode(self._tail.decode("utf-8", "replace"), start)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class Framing(Protocol):
    """How the relay turns a stream's upstream bytes into the client's: whole events, and a late error."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, error: ApiError) -> bytes: ...


class SseFraming:
    """``alt=sse``: ``data: <json>`` events; a late error is a bare JSON object, as Google writes it."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        ends = [match.end() for match in _EVENT_END.finditer(data)]
        if not ends:
            self._pending = data
            return b""
        self._pending = data[ends[-1] :]
        return data[: ends[-1]]

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if rest.strip():
            # Terminate the last event: the JS SDK throws on an unterminated one.
            return rest.rstrip(b"\r\n") + b"\r\n\r\n"
        return rest

    def error(self, error: ApiError) -> bytes:
        self._pending = b""  # half an event is worse than none
        return error.compact() + b"\n"


class JsonArrayFraming:
    """No ``alt``: one JSON array streamed element by element; a late error is a last element."""

    def __init__(self) -> None:
        self._sent_any = False
        self._last_byte = b""

    def feed(self, chunk: bytes) -> bytes:
        stripped = chunk.rstrip()
        if stripped:
            self._sent_any = True
            self._last_byte = stripped[-1:]
        return chunk

    def finish(self) -> bytes:
        return b""

    def error(self, error: ApiError) -> bytes:
        if not self._sent_any:
            return b"[" + error.compact() + b"]"
        if self._last_byte == b"]":
            return b""  # the array is already complete; nothing can be added
        return b",\r\n" + error.compact() + b"]"
