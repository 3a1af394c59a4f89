"""Daphne's HTTP request, checked where the bytes enter, before the application sees anything.

Twisted calls ``gotLength`` once a request's headers are in, ``handleContentChunk``
for each piece of body as it arrives, and ``requestReceived`` when the whole
request is in; Daphne then starts the application. Refusals here answer in
Google's error shape and close the connection at once, reading nothing more:
the request never reaches Daphne's buffering or the application.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from daphne import http_protocol
from daphne import server as server_module
from twisted.web.http import RESPONSES
from twisted.web.http_headers import _NameEncoder

from gemproxy_site.body_limits import body_limit, payload_too_large_message
from gemproxy_site.request_target import InvalidRequestTarget, RequestTarget, parse_request_target

# Twisted writes header names in Header-Case ("X-Goog-Upload-Url"). The async Python SDK looks the
# resumable upload URL up in a case-sensitive dict under Google's spellings only, "x-goog-upload-url" or
# "X-Goog-Upload-URL"; Twisted's own table of unconventional capitalisations is the one way to send the latter.
_NameEncoder._caseMappings[b"X-Goog-Upload-Url"] = b"X-Goog-Upload-URL"


def reason_phrase(code: int) -> bytes:
    """The status line's reason: Twisted's table lacks 429 and a few others (it says "Unknown Status")."""
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return RESPONSES.get(code, b"Unknown Status")


def refusal(message: str) -> bytes:
    """A complete HTTP/1.1 answer: 400 INVALID_ARGUMENT in Google's shape, and the connection closes."""
    body = json.dumps({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}, indent=2).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _SendWindow:
    """A response's IPushProducer: paused by Twisted while the socket's send buffer is full.

    Daphne writes every body message to the transport at once, so a body made
    faster than the client reads it (a file from disk, to a slow link) piles up
    in memory. ``await_writable`` lets the server hold the application's next
    ``send`` until the buffer has drained.
    """

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    def pauseProducing(self) -> None:
        self._open.clear()

    def resumeProducing(self) -> None:
        self._open.set()

    def stopProducing(self) -> None:
        self._open.set()  # the connection is gone: nothing to wait for

    async def wait(self) -> None:
        await self._open.wait()


async def handle_reply_when_writable(server, protocol, message) -> None:
    """Daphne's ``Server.handle_reply``, returning only once the client can take more of the body."""
    await _daphne_handle_reply(server, protocol, message)
    if message.get("type") == "http.response.body" and message.get("more_body"):
        writable = getattr(protocol, "await_writable", None)
        if writable is not None:
            await writable()


_daphne_handle_reply = server_module.Server.handle_reply


class GuardedRequest(http_protocol.WebRequest):
    """Daphne's request with a body limit per route, the absolute form served, and no form decoding.

    Twisted also parses every POST's Content-Type with the email package to
    decode form bodies; Daphne never uses the result (it hands the raw body to
    the application), and it was 7% of the gateway's CPU per relayed call.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False
        self._target: RequestTarget | None = None
        self._body_limit = 0
        self._body_received = 0
        self._refused = False
        self._window: _SendWindow | None = None

    def handle_reply(self, message: dict) -> None:
        body = message.get("type") == "http.response.body"
        more = bool(message.get("more_body"))
        if body and more and self._window is None and self.producer is None and not self.finished:
            self._window = _SendWindow()
            self.registerProducer(self._window, True)
        if body and not more and self._window is not None:
            self.unregisterProducer()
            self._window.resumeProducing()
        super().handle_reply(message)

    async def await_writable(self) -> None:
        if self._window is not None and not self.finished:
            await self._window.wait()

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        # Daphne passes no message, so Twisted would name a 429 "Unknown Status".
        super().setResponseCode(code, message if message is not None else reason_phrase(code))

    def gotLength(self, length: int | None) -> None:
        # Daphne takes the root path from this header when any client sends it,
        # which would let a client choose how Django and the body limits see
        # the path. A deployment under a prefix says so with --root-path.
        self.requestHeaders.removeHeader(b"daphne-root-path")
        try:
            self._target = parse_request_target(self.channel._path)
        except InvalidRequestTarget as error:
            self._refuse(str(error))
            return
        self._body_limit = body_limit(self._route_path(self._target))
        if length is not None and length > self._body_limit:
            self._refuse(payload_too_large_message(self._body_limit))
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        # Reached with a declared length within the limit (Twisted never hands
        # on more than was declared) or with a chunked body, counted here.
        if self._refused:
            return
        self._body_received += len(data)
        if self._body_received > self._body_limit:
            self._refuse(payload_too_large_message(self._body_limit))
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused or self._target is None:
            return
        if self._target.authority is not None:
            self.requestHeaders.setRawHeaders(b"host", [self._target.authority])
        super().requestReceived(command, self._target.origin_form, version)

    def _route_path(self, target: RequestTarget) -> str:
        path, root = target.path, self.server.root_path or ""
        return path[len(root) :] if root and path.startswith(root) else path

    def _refuse(self, message: str) -> None:
        """Answer and close without reading on; the request stays the channel's until the connection is gone."""
        self._refused = True
        # Twisted would send "100 Continue" after the headers: not after an answer.
        self.requestHeaders.removeHeader(b"expect")
        answer = refusal(message)
        self.channel.transport.write(answer)
        self.channel.loseConnection()
        self.server.log_action(
            "http",
            "complete",
            {
                "path": self.channel._path.decode("ascii", "backslashreplace"),
                "status": 400,
                "method": self.channel._command.decode("ascii", "replace"),
                "client": f"{self.client.host}:{self.client.port}" if hasattr(self.client, "host") else None,
                "time_taken": 0,
                "size": len(answer),
            },
        )
