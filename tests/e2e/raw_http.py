"""HTTP/1.1 spoken byte by byte over a socket, for requests no HTTP client library would send."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the last byte sent to the answer's end
    closed: bool  # the server closed the connection after answering

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Flood:
    """What became of a body sent without end: how much the server took before it stopped reading."""

    accepted: int
    cut_off: bool  # the connection broke while we were still sending
    answer: RawAnswer | None = field(default=None)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    # A small send buffer, so that "accepted" counts what the server read, not what our kernel queued.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    return sock


def read_answer(sock: socket.socket, started: float) -> RawAnswer:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    seconds = time.monotonic() - started
    try:
        closed = sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        closed = False
    except ConnectionResetError:
        closed = True
    return RawAnswer(response.status, headers, body, seconds, closed)


def exchange(port: int, request: bytes, timeout: float = 10.0) -> RawAnswer:
    """Send ``request`` as it is and read one answer."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, time.monotonic())


def flood(port: int, head: bytes, piece: bytes, max_bytes: int, timeout: float = 10.0) -> Flood:
    """Send ``head``, then ``piece`` again and again until the server closes or ``max_bytes`` are sent."""
    with connect(port, timeout) as sock:
        sock.sendall(head)
        accepted, cut_off = 0, False
        try:
            while accepted < max_bytes:
                sock.sendall(piece)  # whole pieces: chunked framing must stay intact
                accepted += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
        except TimeoutError:
            pass  # the server stopped reading and kept the connection: not cut off
        try:
            answer = read_answer(sock, time.monotonic())
        except (ConnectionError, http.client.HTTPException, TimeoutError):
            answer = None
        return Flood(accepted, cut_off, answer)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)
