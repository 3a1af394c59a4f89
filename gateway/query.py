"""The query string of an API call: parsed once, checked, and re-encoded for the upstream.

Read from the raw query string, never through ``request.GET``: Django raises
TooManyFieldsSent past 1,000 fields and keeps the *last* of repeated values,
while the upstream would read the first. Here every parameter appears at most
once (Google's query parameters are all singular, so a repeat can only be a
mistake or an attempt to be read two ways), ``alt`` decides both the framing
and what the upstream is asked for, and the forwarded query is re-encoded from
the decoded, validated pairs, without the client's key (removed by its decoded
name, whatever its spelling: ``%6Bey`` is ``key``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode

from gateway.errors import invalid_argument
from gateway.resources import quoted

# Calls carry a handful (alt, key, pageSize, pageToken, $alt, prettyPrint, fields).
MAX_PARAMETERS = 100
# "alt", "pageSize", "$alt", "$.xgafv", "generationConfig.temperature".
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_.$-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the relay can frame: JSON and server-sent events. Google also knows
# "proto" (binary protobuf) and "media" (downloads), which gemproxy does not relay.
ALT_VALUES = ("json", "sse")
# The legacy GAPIC transport sends "$alt=json;enum-encoding=int".
_DOLLAR_ALT = re.compile(r"(json|sse)(?:;enum-encoding=int)?")
SECRET_NAMES = ("key",)


@dataclass(frozen=True)
class Query:
    pairs: tuple[tuple[str, str], ...] = ()
    alt: str = "json"

    def forwarded(self) -> str:
        """What the upstream receives: every pair but the key, each name and value percent-encoded anew."""
        return urlencode([(name, value) for name, value in self.pairs if name not in SECRET_NAMES])


def _decoded(text: str, what: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid_argument(f"Invalid query string: a parameter {what} is not UTF-8.") from None


def parse_query(raw: str) -> Query:
    """The call's parameters, or an ApiError (400 INVALID_ARGUMENT) that says what is wrong."""
    fields = [field for field in raw.split("&") if field]
    if len(fields) > MAX_PARAMETERS:
        raise invalid_argument(f"Too many query parameters: {len(fields)}; at most {MAX_PARAMETERS} are accepted.")
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for field in fields:
        raw_name, _, raw_value = field.partition("=")
        name, value = _decoded(raw_name, "name"), _decoded(raw_value, "value")
        if not _NAME.fullmatch(name):
            raise invalid_argument(f"Invalid query parameter name {quoted(name)}.")
        if _CONTROL.search(value):
            raise invalid_argument(f"Invalid value for query parameter {quoted(name)}: control characters.")
        # "$alt" is Google's other spelling of "alt": both at once are a repeat too.
        canonical = "alt" if name == "$alt" else name
        if canonical in seen:
            raise invalid_argument(f"Query parameter {quoted(canonical)} was given more than once.")
        seen.add(canonical)
        pairs.append((name, value))
    return Query(tuple(pairs), _alt(pairs))


def _alt(pairs: list[tuple[str, str]]) -> str:
    for name, value in pairs:
        if name == "alt":
            if value not in ALT_VALUES:
                raise invalid_argument(f"Invalid value for alt: {quoted(value)}; gemproxy relays alt=json and alt=sse.")
            return value
        if name == "$alt":
            match = _DOLLAR_ALT.fullmatch(value)
            if match is None:
                raise invalid_argument(f"Invalid value for $alt: {quoted(value)}.")
            return match.group(1)
    return "json"
