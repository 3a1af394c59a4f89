"""HTTP/1.1 for every request the gateway serves: llhttp's parser (httptools) on Twisted's transport.

Daphne serves HTTP with twisted.web's ``HTTPChannel`` and ``Request``: each
request line and header is parsed by Python, then copied into a Headers
object, a temporary file for the body, an ``inlineCallbacks`` generator and
Daphne's own request, and the answer's headers pass through three layers.
Measured with ``bench/bench_instructions.py --floor`` (a fixed answer from a
trivial application) that cost most of a request's instructions; this module
does the same work with one parser callback per header, in the same Daphne
process. What stays Daphne's: the listening and its options, the server's
registry of application instances (its time-outs, the kill of an application
that outlives its client, the shutdown), the access log, and the WebSocket
protocol (autobahn), to which an upgrade is handed.

Every request is checked where its bytes enter, before the application sees
it, and refused in Google's error shape with the connection closed:

- llhttp refuses what is not HTTP/1.1 (bad framing, both a length and
  chunking, bytes no header may hold);
- the request line and headers stay within Twisted's limits (16 KiB, 500
  headers);
- the target must be a URI (``gemproxy_site.request_target``); an absolute one
  is served as its path, with its host;
- the body's limit is its route's (``gemproxy_site.body_limits``): a declared
  length over it is refused at the headers, before a ``100 Continue``, and a
  chunked body as soon as it passes it.

The application reads the body as it arrives, and reading stops while it has
more than ``READ_HIGH_WATER`` bytes it has not taken; an answer's next
``send`` waits while the client is not taking what was sent (back-pressure).
Pipelined requests are answered in order, one at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools
from daphne import http_protocol
from daphne.utils import parse_x_forwarded_for
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin
from twisted.web.http import RESPONSES
from zope.interface import implementer

from gemproxy_site.asgi_extensions import ON_DISCONNECT
from gemproxy_site.body_limits import body_limit, payload_too_large_message
from gemproxy_site.request_target import InvalidRequestTarget, parse_request_target

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16384  # the request line and headers (Twisted's totalHeadersSize)
MAX_HEADERS = 500  # Twisted's maxHeaders
READ_HIGH_WATER = 65536  # body bytes the application has not taken, before the socket is no longer read
ABORT_SECONDS = 15  # after an idle connection is closed, how long it may take to go (Twisted's abortTimeout)

# Bytes RFC 9110 section 5.5 forbids in a field value that llhttp lets through (daphne.utils).
_INVALID_IN_VALUE = re.compile(rb"[\x0b\x0c\x1c-\x1e\x85]")
# Bytes looked for by their value: ``b"\r" in value`` first tries the needle as an
# integer and formats a TypeError it then drops (about 1,700 instructions each
# time: four tests per header of an answer were 5% of a relayed call's), and a
# regex searches a byte at a time where ``in`` with an integer runs memchr.
_CR, _LF = ord("\r"), ord("\n")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_status_lines: dict[int, bytes] = {}


def reason_phrase(code: int) -> bytes:
    """The status line's reason: Twisted's table lacks 429 and a few others (it says "Unknown Status")."""
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return RESPONSES.get(code, b"Unknown Status")


def status_line(code: int) -> bytes:
    line = _status_lines.get(code)
    if line is None:
        line = _status_lines[code] = b"HTTP/1.1 %d %s\r\n" % (code, reason_phrase(code))
    return line


def google_error(code: int, status: str, message: str, *, close: bool) -> bytes:
    """A complete HTTP/1.1 answer carrying an error in Google's shape."""
    body = json.dumps({"error": {"code": code, "message": message, "status": status}}, indent=2).encode()
    head = (
        status_line(code) + b"Content-Type: application/json; charset=UTF-8\r\n"
        b"X-Content-Type-Options: nosniff\r\n" + b"Content-Length: %d\r\n" % len(body)
    )
    return head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + body


def refusal(message: str) -> bytes:
    """400 INVALID_ARGUMENT in Google's shape, and the connection closes."""
    return google_error(400, "INVALID_ARGUMENT", message, close=True)


class _Refused(Exception):
    """Raised in a parser callback: the request is refused with ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Exchange:
    """One request and its answer: the application's ``receive`` and ``send``.

    To Daphne's server it is one of its "protocols": it checks each one's
    time-out and kills an application that outlives its client by more than
    ``application_close_timeout``.
    """

    def __init__(
        self, channel: HttpChannel, scope: dict, target: str, limit: int, keep_alive: bool, expects_continue: bool
    ):
        self.channel = channel
        self.scope = scope
        scope["extensions"] = {ON_DISCONNECT: self.on_disconnect}
        self.target = target  # as sent, for the access log
        self.limit = limit
        self.keep_alive = keep_alive
        self.head_only = scope["method"] == "HEAD"
        self.started_at = time.time()
        self._expects_continue = expects_continue
        self.received = 0  # body bytes read from the client
        self._body: list[bytes] = []  # read, not yet taken by the application
        self._pending = 0
        self.more_body = True  # more of the body is to come from the client
        self._body_taken = False  # the application has had the last of the body
        self._waiter: asyncio.Future | None = None
        self.started = False  # the answer's status and headers are sent
        self.complete = False  # the whole answer is sent
        self.disconnected = False
        self.status = 0
        self.sent = 0
        self._head: bytes | None = None
        self._chunked = False
        self._released = False
        self._on_gone: Callable[[], None] | None = None

    def release(self) -> None:
        """Tell Daphne's server this exchange is over, once: it reaps the entry when the application ends."""
        if not self._released:
            self._released = True
            self.channel.server.protocol_disconnected(self)

    # The client's side, from the channel.

    def body_arrived(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            raise _Refused(payload_too_large_message(self.limit))
        self._body.append(data)
        self._pending += len(data)
        if self._pending > READ_HIGH_WATER:
            self.channel.pause_reading()
        self._wake()

    def body_ended(self) -> None:
        self.more_body = False
        self._wake()

    def gone(self) -> None:
        self.disconnected = True
        self._wake()
        told, self._on_gone = self._on_gone, None
        if told is not None and not self.complete:
            told()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # The application's side.

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """The ``ON_DISCONNECT`` extension: ``callback()`` once if the client leaves before the answer is complete."""
        if self.disconnected and not self.complete:
            callback()
        else:
            self._on_gone = callback

    async def run(self, application) -> None:
        try:
            await application(self.scope, self.receive, self.send)
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                logger.error("Exception inside application: %s", error, exc_info=error)
            self._fail()
            if not isinstance(error, Exception):
                raise
        else:
            if not self.complete and not self.disconnected:
                logger.error("The application ended without completing its answer to %s", self.target)
                self._fail()

    async def receive(self) -> dict[str, Any]:
        if self._expects_continue:
            self._expects_continue = False
            if not self.disconnected:
                self.channel.transport.write(_CONTINUE)
        while True:
            if not self._body_taken and (self._body or not self.more_body):
                body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self._pending = 0
                self._body_taken = not self.more_body
                self.channel.resume_reading()
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            if self.disconnected or self.complete:
                return {"type": "http.disconnect"}
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected or self.complete:
            return  # as Daphne: an answer to a client that is gone goes nowhere
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise ValueError("HTTP response has already been started")
            self._head = self._start(message["status"], message.get("headers", ()))
            self.started = True
        elif kind == "http.response.body":
            if not self.started:
                raise ValueError(f"HTTP response has not yet been started but got {kind}")
            more = message.get("more_body", False)
            self._write(message.get("body", b""), more)
            if not more:
                self.complete = True
                self._wake()
                self.channel.answered(self)
            elif self.channel.write_paused:
                await self.channel.writable()
        else:
            raise ValueError(f"Cannot handle message type {kind}!")

    def _start(self, status: int, headers) -> bytes:
        self.status = status
        lines = [status_line(status)]
        has_length = named = False
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                raise ValueError(f"Header {name!r}: {value!r} must be bytes")
            if _CR in name or _LF in name or _CR in value or _LF in value:
                raise ValueError(f"Header {name!r} holds a line break")
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
            elif lower == b"server":
                named = True
            elif lower == b"connection" and value.lower().find(b"close") >= 0:
                self.keep_alive = False
            lines += (name, b": ", value, b"\r\n")
        server_name = self.channel.server.server_name
        if server_name and not named:
            lines.append(b"Server: %s\r\n" % server_name.encode())
        if not has_length and not self.head_only and status not in (204, 304):
            if self.scope["http_version"] == "1.1":
                self._chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0: the answer ends where the connection does
        if not self.keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _write(self, body: bytes, more: bool) -> None:
        pieces = []
        if self._head is not None:
            pieces.append(self._head)
            self._head = None
        if body and not self.head_only:
            self.sent += len(body)
            if self._chunked:
                pieces += (b"%x\r\n" % len(body), body, b"\r\n")
            else:
                pieces.append(body)
        if not more and self._chunked:
            pieces.append(b"0\r\n\r\n")
        if pieces:
            self.channel.transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _fail(self) -> None:
        """The application failed or ended early."""
        if not self.complete and not self.disconnected:
            self._end_early(500, "INTERNAL", "Internal error encountered.")

    def _end_early(self, code: int, status: str, message: str) -> None:
        """An error in Google's shape if nothing was sent yet, else the answer cut off; the connection closes."""
        if not self.started:
            self.status = code
            self.channel.transport.write(google_error(code, status, message, close=True))
        self.keep_alive = False
        self.complete = True
        self._wake()
        self.channel.answered(self)

    # Daphne's server's side.

    def duration(self) -> float:
        return time.time() - self.started_at

    def check_timeouts(self) -> None:
        """Daphne's ``--http-timeout``: an answer not complete within it is ended."""
        timeout = self.channel.server.http_timeout
        if timeout and not self.complete and not self.disconnected and self.duration() > timeout:
            self._end_early(503, "UNAVAILABLE", "The application did not answer in time.")

    def handle_exception(self, exception: BaseException) -> None:
        self._fail()


@implementer(IPushProducer)
class HttpChannel(Protocol, TimeoutMixin):
    """One client connection: its requests parsed, checked, and answered one at a time.

    It is also the transport's producer: Twisted pauses it while the socket's
    send buffer is full, and an answer's ``send`` waits for that to pass.
    """

    transport: Any  # a TCP (or TLS) connection: Twisted's interfaces type it as much less

    def __init__(self, server, timeout: int | None) -> None:
        self.server = server
        self.timeOut = timeout
        self._parser = httptools.HttpRequestParser(self)
        self._answering: Exchange | None = None  # its application runs
        self._queued: list[Exchange] = []  # pipelined behind it (a list: an empty deque is 600 bytes)
        self._reading: Exchange | None = None  # its body is still arriving
        self._held: list[bytes] = []  # what the client sent on while the one before was answered
        self._refused: bytes | None = None  # a refusal to send once the answer before it is out
        self._done = False  # the connection is closing or closed: nothing more is read or served
        self._reading_paused = False
        self.write_paused = False
        self._writable: asyncio.Future | None = None
        self._url = b""  # the request-target being read
        self._websocket_head: tuple | None = None  # a WebSocket upgrade's request, to hand over as it came

    # Twisted's side.

    def connectionMade(self) -> None:
        transport = self.transport
        transport.registerProducer(self, True)
        # A streamed answer is many small writes: Nagle's algorithm would hold each behind the
        # client's (delayed) acknowledgement of the one before. Autobahn does the same for executors.
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        peer, host = transport.getPeer(), transport.getHost()
        self._client = [str(peer.host), peer.port] if hasattr(peer, "port") else None
        self._server_address = [str(host.host), host.port] if hasattr(host, "port") else None
        self._scheme = "https" if ISSLTransport.providedBy(transport) else "http"
        self.setTimeout(self.timeOut)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        self.resetTimeout()
        if self._held or (self._reading is None and self._answering is not None):
            # Pipelined: read on only once the answer before is out.
            self._held.append(data)
            self.pause_reading()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._websocket_head is not None:
                self._upgrade()
            else:
                self._upgrade_not_taken()
        except _Refused as refused:
            self._refuse(refused.message)
        except httptools.HttpParserError as error:
            cause = error.__context__
            self._refuse(cause.message if isinstance(cause, _Refused) else "Malformed HTTP request.")

    def connectionLost(self, reason=None) -> None:
        self._done = True
        self.setTimeout(None)
        self._end_all()
        self.stopProducing()

    def timeoutConnection(self) -> None:
        self._close()
        self.callLater(ABORT_SECONDS, self._abort)

    def _abort(self) -> None:
        if self.transport is not None and self.transport.connected:
            self.transport.abortConnection()

    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def stopProducing(self) -> None:
        self.resumeProducing()  # the connection is gone: nothing to wait for

    async def writable(self) -> None:
        while self.write_paused and not self._done:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def pause_reading(self) -> None:
        if not self._reading_paused and not self._done:
            self._reading_paused = True
            self.transport.pauseProducing()

    def resume_reading(self) -> None:
        if self._reading_paused and not self._held and not self._done:
            self._reading_paused = False
            self.transport.resumeProducing()

    # The parser's callbacks.

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._header_count = 0
        self._length: int | None = None
        self._chunked = False
        self._upgrade_to = b""
        self._expects_continue = False
        self._websocket_head = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise _Refused(f"More than {MAX_HEADERS} headers.")
        value = value.rstrip(b" \t")
        if _INVALID_IN_VALUE.search(value):
            raise _Refused("Invalid header value.")
        name = name.lower()
        if name.find(b"_") >= 0:  # not ``b"_" in name``: see _CR
            return  # never passed on: with "-", they would read as the same header (CVE-2015-0219)
        if name == b"daphne-root-path":
            return  # Daphne would let a client choose the root path with it; a deployment says it with --root-path
        if name == b"content-length":
            self._length = int(value)  # llhttp has checked it is one number
        elif name == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif name == b"expect":
            self._expects_continue = value.lower() == b"100-continue"
        elif name == b"upgrade":
            self._upgrade_to = value.lower()
        self._headers.append((name, value))

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Refused(f"The request line and headers exceed {MAX_HEAD_BYTES} bytes.")

    def on_headers_complete(self) -> None:
        parser = self._parser
        try:
            target = parse_request_target(self._url)
        except InvalidRequestTarget as error:
            raise _Refused(str(error)) from None
        headers = self._headers
        if target.authority is not None:
            headers = [(name, value) for name, value in headers if name != b"host"]
            headers.append((b"host", target.authority))
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            raise _Refused("CONNECT is not served here.")
        origin, _, query = target.origin_form.partition(b"?")
        if parser.should_upgrade() and self._upgrade_to == b"websocket":
            self._websocket_head = (method, target.origin_form, query, headers)
            return  # the parser stops here, and dataReceived hands the connection over
        if parser.should_upgrade() and (self._chunked or self._length):
            # llhttp reads no body after an upgrade it does not know where to stop.
            raise _Refused("Only a WebSocket upgrade is served; without it, send the request without Upgrade.")
        root_path = self.server.root_path or ""
        path = unquote(origin.decode("ascii"))
        limit = body_limit(path[len(root_path) :] if root_path and path.startswith(root_path) else path)
        if self._length is not None and self._length > limit:
            raise _Refused(payload_too_large_message(limit))
        version = parser.get_http_version()
        client, scheme = self._client, self._scheme
        if self.server.proxy_forwarded_address_header:
            client, scheme = self._forwarded(headers, client, scheme)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": version,
            "method": method,
            "path": path,
            "raw_path": origin,
            "root_path": root_path,
            "scheme": scheme,
            "query_string": query,
            "headers": headers,
            "client": client,
            "server": self._server_address,
        }
        # Any other upgrade (h2c...) is served as plain HTTP, as Twisted did; the parser reads no further.
        keep_alive = version == "1.1" and parser.should_keep_alive() and not parser.should_upgrade()
        expects_continue = self._expects_continue and version == "1.1"
        exchange = Exchange(self, scope, self._url.decode("ascii"), limit, keep_alive, expects_continue)
        self._reading = exchange
        if self._answering is None:
            self._serve(exchange)
        else:
            self._queued.append(exchange)

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.body_arrived(body)

    def on_message_complete(self) -> None:
        exchange, self._reading = self._reading, None
        if exchange is not None:
            exchange.body_ended()
            if exchange is self._answering:
                self.setTimeout(None)  # the application may take long: no idle time-out while it answers

    def _forwarded(self, headers, client, scheme):
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            by_name.setdefault(name, []).append(value)
        server = self.server
        return parse_x_forwarded_for(
            by_name,
            server.proxy_forwarded_address_header,
            server.proxy_forwarded_port_header,
            server.proxy_forwarded_proto_header,
            client,
            scheme,
        )

    # Serving.

    def _serve(self, exchange: Exchange) -> None:
        self._answering = exchange
        if self._reading is not exchange:
            self.setTimeout(None)
        server = self.server
        server.protocol_connected(exchange)
        server.connections[exchange]["application_instance"] = asyncio.ensure_future(exchange.run(server.application))

    def answered(self, exchange: Exchange) -> None:
        """The whole answer is sent (or the application gave up): log it, then serve what comes next."""
        exchange.release()
        self.server.log_action(
            "http",
            "complete",
            {
                "path": exchange.target,
                "status": exchange.status,
                "method": exchange.scope["method"],
                "client": "{}:{}".format(*exchange.scope["client"]) if exchange.scope["client"] else None,
                "time_taken": exchange.duration(),
                "size": exchange.sent,
            },
        )
        self._answering = None
        if self._refused is not None:
            self.transport.write(self._refused)
            self._refused = None
            self._close()
        elif self._done or not exchange.keep_alive or self._reading is exchange:
            # A body the application never read would be taken for the next request.
            self._close()
        elif self._queued:
            self._serve(self._queued.pop(0))
        else:
            self.setTimeout(self.timeOut)
            if self._held:
                data = b"".join(self._held)
                self._held.clear()
                self.resume_reading()
                self.dataReceived(data)

    def _refuse(self, message: str) -> None:
        answer = refusal(message)
        self.server.log_action(
            "http",
            "complete",
            {
                "path": self._url.decode("ascii", "backslashreplace"),
                "status": 400,
                "method": self._method_text(),
                "client": "{}:{}".format(*self._client) if self._client else None,
                "time_taken": 0,
                "size": len(answer),
            },
        )
        answering = self._answering
        if answering is not None and answering is not self._reading and not answering.complete:
            # What was read before the bad bytes is answered first.
            self._refused = answer
            self.pause_reading()
            self._done = True
            self._drop_queued()
            return
        self.transport.write(answer)
        self._close()

    def _method_text(self) -> str:
        try:
            return self._parser.get_method().decode("ascii", "replace")
        except httptools.HttpParserError:
            return "-"

    def _upgrade(self) -> None:
        """Hand the connection to Daphne's WebSocket protocol, the request as it came."""
        if self._answering is not None or self._websocket_head is None:
            self._refuse("A WebSocket upgrade must be the only request in flight.")
            return
        method, target, query, headers = self._websocket_head
        self._done = True
        self.setTimeout(None)
        transport = self.transport
        transport.unregisterProducer()
        protocol = self.server.ws_factory.buildProtocol(transport.getPeer())
        protocol._raw_query_string = query
        if isinstance(transport, ProtocolWrapper):  # TLS wraps the connection
            transport.wrappedProtocol = protocol
        else:
            transport.protocol = protocol
        protocol.makeConnection(transport)
        head = [method.encode(), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        protocol.dataReceived(b"".join(head))

    def _upgrade_not_taken(self) -> None:
        """An upgrade to anything but a WebSocket (h2c...): served as HTTP, as Twisted did, and the connection ends.

        llhttp reads nothing after such a request (refused in ``on_headers_complete`` when it has a body).
        """
        exchange, self._reading = self._reading, None
        self._done = True  # nothing after it is read
        if exchange is not None:
            exchange.body_ended()

    def _close(self) -> None:
        self._done = True
        self._end_all()
        if self.transport is not None:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _end_all(self) -> None:
        answering, self._answering = self._answering, None
        if answering is not None and not answering.complete:
            answering.gone()
            answering.release()
        self._drop_queued()

    def _drop_queued(self) -> None:
        for exchange in self._queued:
            exchange.gone()
        self._queued.clear()


class HttpFactory(http_protocol.HTTPFactory):
    """Daphne's HTTP factory (its server, Twisted's idle time-out of 60 s), building ``HttpChannel``."""

    def buildProtocol(self, addr) -> HttpChannel:
        channel = HttpChannel(self.server, self.timeOut)
        channel.factory = self
        return channel
