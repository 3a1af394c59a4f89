"""The request-target of an HTTP/1.1 request line, as the application must see it.

RFC 9112 section 3.2: a server must accept the absolute form
(``GET http://host/v1beta/models``, what clients configured with gemproxy as
an HTTP proxy send) and then serve it as its origin form (``/v1beta/models``),
taking the host from the target. Daphne passes the target on as the path, so
such a request would reach no route. Anything that is neither form, or holds
bytes a URI cannot (controls, DEL, non-ASCII), is refused before the
application sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_PRINTABLE_ASCII = re.compile(rb"[!-~]+")
_ABSOLUTE_FORM = re.compile(rb"(?i:https?)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL)


class InvalidRequestTarget(ValueError):
    pass


@dataclass(frozen=True)
class RequestTarget:
    origin_form: bytes  # path and query, as sent
    authority: bytes | None  # the host of an absolute-form target, which replaces the Host header

    @property
    def path(self) -> str:
        """The decoded path, as Daphne gives it to the application."""
        return unquote(self.origin_form.split(b"?", 1)[0].decode("ascii"))


def parse_request_target(target: bytes) -> RequestTarget:
    if not _PRINTABLE_ASCII.fullmatch(target):
        raise InvalidRequestTarget("Invalid characters in the request URI: encode them.")
    if target.startswith(b"/"):
        return RequestTarget(target, None)
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise InvalidRequestTarget("The request URI must be a path starting with '/', or an absolute http(s) URI.")
    authority, rest = match["authority"], match["rest"]
    if not authority or b"@" in authority:
        # RFC 9110 section 4.2.4: user information in an http URI is an error.
        raise InvalidRequestTarget("The request URI must name a host, without user information.")
    if not rest.startswith(b"/"):
        rest = b"/" + rest
    return RequestTarget(rest.split(b"#", 1)[0], authority)
