"""Daphne's access log without secrets and without forged lines.

Clients may put their key in the query string (``?key=``), and Daphne logs
request lines verbatim. Django decodes parameter names before the gateway
reads them (``%6Bey`` is ``key``), so a secret is recognised by its decoded
name, never by its spelling. The request line is the client's text: control
characters in it are escaped so that it cannot start a line of its own.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from urllib.parse import unquote

from daphne.access import AccessLogGenerator

# Decoded names are compared with everything but letters and digits removed,
# case-folded: "api_key", "API-Key", "key\x00" and "k ey" all count as "key"ish.
_SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd", "signature", "credential", "credentials")
_SECRET_NAMES = frozenset({"sig", "auth", "authorization", "uploadid", "session", "sessionid"})
# Names that end like a secret but are not one: Gemini's list calls page with pageToken.
_NOT_SECRET = frozenset({"pagetoken"})
# Paths that carry a secret after this part: the members' one-time sign-in links (accounts.invitations).
_SECRET_PATH_PARTS = ("/me/welcome/",)
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_UNPRINTABLE = re.compile(r'[^\x20-\x7e]|["\\]')
REDACTED = "REDACTED"


def is_secret_parameter(raw_name: str) -> bool:
    """Whether a query parameter, named as sent (percent-encoded, ``+`` for space), may carry a secret."""
    name = _NOT_ALPHANUMERIC.sub("", unquote(raw_name.replace("+", " "), errors="replace").casefold())
    if name in _NOT_SECRET:
        return False
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def _redacted_query(query: str) -> str:
    fields = []
    for field in query.split("&"):
        name, equals, _value = field.partition("=")
        fields.append(f"{name}={REDACTED}" if equals and is_secret_parameter(name) else field)
    return "&".join(fields)


def _escape(character: re.Match[str]) -> str:
    code = ord(character.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """Printable ASCII only, with quotes and backslashes escaped as Apache does in its access log."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # nearly every line: two C scans rather than a regex a character at a time
    return _UNPRINTABLE.sub(_escape, text)


def _redacted_path(target: str) -> str:
    # Compared decoded, as Django routes it: /me/%77elcome/... opens the same page.
    decoded = unquote(target, errors="replace") if "%" in target else target
    for part in _SECRET_PATH_PARTS:
        start = decoded.find(part)
        if start != -1:
            return decoded[: start + len(part)] + REDACTED
    return target


def redact(request_line: str) -> str:
    """The values of secret query parameters and secret path segments replaced; the rest kept as sent.

    A raw ``#`` cannot reach the server, so the query is everything after the first ``?``.
    """
    target, question_mark, query = request_line.partition("?")
    target = _redacted_path(target)
    if not question_mark:
        return target
    return f"{target}?{_redacted_query(query)}"


def loggable(request_line: str) -> str:
    return escape(redact(request_line))


class RedactingAccessLog(AccessLogGenerator):
    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.json = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
        self._second: tuple[int, ...] = ()
        self._stamp = ""

    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None) -> None:
        if self.json:
            self.stream.write(json_entry(str(host), loggable(request), status, length) + "\n")
            return
        # Daphne's line, word for word, with its time formatted once a second:
        # strftime was a third of the line's cost, paid on every relayed call.
        stamp = self._stamp_of(date)
        self.stream.write(
            f'{escape(str(host))} {ident or "-"} {user or "-"} [{stamp}] "{loggable(request)}" '
            f"{status or '-'} {length or '-'}\n"
        )

    def _stamp_of(self, date: datetime) -> str:
        second = (date.second, date.minute, date.hour, date.day, date.month, date.year)
        if second != self._second:
            self._second, self._stamp = second, date.strftime("%d/%b/%Y:%H:%M:%S")
        return self._stamp


def json_entry(host: str, request: str, status: int | None, length: int | None) -> str:
    """An access log line as LOG_FORMAT=json writes every line: one object, the fields as fields."""
    return json.dumps(
        {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "daphne.access",
            "message": f'{escape(host)} "{request}" {status or "-"} {length or "-"}',
            "client": escape(host),
            "request": request,
            "status": status,
            "bytes": length,
        }
    )


class RedactingFilter(logging.Filter):
    """Django's request log names the path of a failed request: redact it as the access log does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True
