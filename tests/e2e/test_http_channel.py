"""The gateway's HTTP/1.1 (gemproxy_site.http_channel) with applications that do what no view of ours does.

A real ``gemproxy_site.serve`` process serves ``tests/e2e/http_channel_apps.py``;
requests are spoken byte by byte over sockets, as hostile or unusual clients do.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect as websocket_connect

from tests.e2e.harness import PYTHON, Deployment, Process, free_port, wait_until
from tests.e2e.raw_http import exchange

SERVE_APPS = (
    "import sys; from gemproxy_site.serve import main; "
    "main(sys.argv[1:], application='tests.e2e.http_channel_apps:application')"
)


class Server:
    def __init__(self, process: Process, port: int) -> None:
        self.process, self.port = process, port

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        return sock

    def rss(self) -> int:
        status = Path(f"/proc/{self.process.popen.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024


def start_server(deployment: Deployment, name: str, *options: str) -> Server:
    port = free_port()
    args = [PYTHON, "-c", SERVE_APPS, "-b", "127.0.0.1", "-p", str(port), "--access-log", "-", *options]
    process = Process(name, args, deployment.env, deployment.tmp)
    deployment.processes.append(process)
    served = Server(process, port)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, what="the test applications' server")
    return served


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Server:
    return start_server(deployment, "apps")


class _Unclosable:
    """The connection's one buffered reader, which http.client closes after each answer."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def close(self) -> None:
        pass


class Answers:
    """Answers read one after another from one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = _Unclosable(sock)

    def makefile(self, *args, **kwargs):
        return self.file  # every answer reads on from the same buffer

    def next(self, method: str = "GET") -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(self, method=method)  # type: ignore[arg-type]
        response.begin()
        return response

    def closed(self) -> bool:
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True


def request(path: str, body: bytes = b"", *headers: str, method: str = "POST", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


def test_requests_on_one_connection_are_answered_in_turn(server: Server) -> None:
    with server.connect() as sock:
        answers = Answers(sock)
        bodies = []
        for n in range(3):
            sock.sendall(request(f"/echo/{n}", f"body {n}".encode()))
            bodies.append(json.loads(answers.next().read())["body"])

    assert bodies == ["body 0", "body 1", "body 2"]


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"".join(request(f"/echo/{n}", b"x" * n) for n in range(1, 6)))
        answers = Answers(sock)
        seen = [json.loads(answers.next().read()) for _ in range(5)]

    assert [(answer["path"], answer["size"]) for answer in seen] == [(f"/echo/{n}", n) for n in range(1, 6)]


def test_bytes_after_a_request_are_refused_once_it_is_answered(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request("/echo", b"{}") + b"NOT HTTP AT ALL\r\n\r\n")
        answers = Answers(sock)
        first = answers.next()
        first_body = json.loads(first.read())
        second = answers.next()
        second_body = json.loads(second.read())

        assert answers.closed()
    assert first.status == 200 and first_body["body"] == "{}"
    assert second.status == 400
    assert second_body["error"]["status"] == "INVALID_ARGUMENT"


def test_a_body_is_asked_for_with_100_continue(server: Server) -> None:
    with server.connect() as sock:
        head = request("/echo", b"", "Expect: 100-continue").replace(b"Content-Length: 0", b"Content-Length: 5")
        sock.sendall(head)
        sock.settimeout(5)
        interim = sock.recv(1024)
        sock.sendall(b"hello")
        answer = Answers(sock).next()

        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert json.loads(answer.read())["body"] == "hello"


def test_an_http_1_0_client_gets_its_answer_whole_and_the_connection_closes(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request("/stream", version="1.0"))
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"chunked" not in head.lower()
    assert body == b"one two three"


def test_a_streamed_answer_is_chunked(server: Server) -> None:
    answer = exchange(server.port, request("/stream", b"", "Connection: close"))

    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.body == b"one two three"


def test_head_gets_the_headers_without_the_body(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request("/echo", method="HEAD") + request("/echo/after", b"next"))
        answers = Answers(sock)
        head = answers.next(method="HEAD")
        head_body = head.read()
        after = json.loads(answers.next().read())

    assert int(head.getheader("content-length")) > 0
    assert head_body == b""
    assert after["body"] == "next"  # nothing of the HEAD's body was taken for the next answer


def test_a_body_is_read_no_faster_than_the_application_takes_it(server: Server) -> None:
    body = b"y" * (16 * 1024 * 1024)
    sent = 0

    def send_body(sock: socket.socket) -> None:
        nonlocal sent
        sock.sendall(
            request("/v1beta/slow-reader", b"", "Connection: close").replace(b"Length: 0", b"Length: %d" % len(body))
        )
        for start in range(0, len(body), 65536):
            sock.sendall(body[start : start + 65536])
            sent += 65536

    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sender = threading.Thread(target=send_body, args=(sock,))
        sender.start()
        time.sleep(1.0)  # the application sleeps 1.5 s after its first piece
        sent_while_it_slept = sent
        answer = json.loads(Answers(sock).next().read())
        sender.join(10)

    assert sent_while_it_slept < 4 * 1024 * 1024  # the socket was no longer read: the client had to wait
    assert answer["total"] == len(body)  # and then all of it arrived


def test_an_answer_waits_for_a_client_that_does_not_read(server: Server) -> None:
    rss_before = server.rss()
    with server.connect() as sock:
        sock.sendall(request("/firehose", method="GET"))
        time.sleep(2)  # 256 MiB offered; the client takes none of it
        grown = server.rss() - rss_before
        received = 0
        while received < 256 * 1024 * 1024:
            chunk = sock.recv(1024 * 1024)
            if not chunk:
                break
            received += len(chunk)

    assert grown < 32 * 1024 * 1024
    assert received >= 256 * 1024 * 1024  # and then all of it arrives


@pytest.mark.parametrize("path", ["/raises", "/no-answer"])
def test_an_application_that_fails_to_answer_is_a_500_in_googles_shape(server: Server, path: str) -> None:
    answer = exchange(server.port, request(path, b"{}"))

    assert answer.status == 500
    assert answer.json()["error"] == {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}
    assert answer.closed
    assert exchange(server.port, request("/echo", b"{}", "Connection: close")).status == 200


def test_an_answer_the_application_leaves_half_done_is_cut_off(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request("/half-answer"))
        answer = Answers(sock).next()

        with pytest.raises(http.client.IncompleteRead):
            answer.read()


def test_an_application_is_told_once_when_its_client_leaves_and_never_after_its_answer(server: Server) -> None:
    """The ON_DISCONNECT extension, which spares the API's handler a task per request."""
    with server.connect() as sock:
        sock.sendall(request("/told-of-leaving?answered-first", b"{}"))
        assert Answers(sock).next().status == 200
    with server.connect() as sock:
        sock.sendall(request("/told-of-leaving?waiting", b"{}"))
        time.sleep(0.3)  # the application is waiting for its answer

    wait_until(lambda: "told: waiting left" in server.process.log(), 5, "the application to be told")
    time.sleep(0.3)
    log = server.process.log()
    assert log.count("told: waiting left") == 1
    assert "told: answered-first left" not in log, "a client leaving after its answer is no news"


@pytest.mark.parametrize("where", ["", "lf", "cr", "name", "name-cr"])
def test_an_application_header_with_a_line_break_never_reaches_the_client(server: Server, where: str) -> None:
    answer = exchange(server.port, request(f"/bad-header?{where}" if where else "/bad-header"))

    assert answer.status == 500
    assert "set-cookie" not in answer.headers


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Odd: a\x85b\r\n\r\n", "a byte no header value may hold"),
        (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Odd: a\x00b\r\n\r\n", "NUL"),
        (b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", "CONNECT"),
        (
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "a length and chunking at once (request smuggling)",
        ),
        (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", "two lengths"),
        (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n", "a space in a header name"),
        (b"GET /echo HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", "an unknown version"),
    ],
)
def test_malformed_requests_are_refused_in_googles_shape(server: Server, head: bytes, why: str) -> None:
    answer = exchange(server.port, head)

    assert answer.status == 400, why
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert answer.closed


def test_headers_the_application_must_not_see_are_dropped(server: Server) -> None:
    answer = exchange(
        server.port,
        request(
            "/echo", b"", "X_Goog_Api_Key: smuggled", "Daphne-Root-Path: /x", "X-Kept:  padded \t", "Connection: close"
        ),
    )

    names = [name for name, _ in answer.json()["headers"]]
    assert "x_goog_api_key" not in names
    assert "daphne-root-path" not in names
    assert ["x-kept", "padded"] in answer.json()["headers"]


def test_an_upgrade_to_anything_but_a_websocket_is_served_as_plain_http(server: Server) -> None:
    answer = exchange(server.port, request("/echo", b"", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c"))

    assert answer.status == 200
    assert answer.json()["method"] == "POST"
    assert answer.closed


def test_an_upgrade_to_anything_but_a_websocket_with_a_body_is_refused(server: Server) -> None:
    answer = exchange(server.port, request("/echo", b"hi", "Connection: Upgrade", "Upgrade: h2c"))

    assert answer.status == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_websocket_upgrade_is_handed_to_daphnes_websocket_protocol(server: Server) -> None:
    with websocket_connect(f"ws://127.0.0.1:{server.port}/ws/anything?x=1", open_timeout=10) as socket_:
        socket_.send("hello")
        assert socket_.recv(timeout=10) == "echo: hello"


def test_a_websocket_application_may_take_its_messages_by_hand_in_order(server: Server) -> None:
    with websocket_connect(f"ws://127.0.0.1:{server.port}/ws/by-hand", open_timeout=10) as socket_:
        socket_.send("one")
        socket_.send("two")
        assert socket_.recv(timeout=10) == "by hand: one"
        assert socket_.recv(timeout=10) == "by hand: two"


def test_every_answer_is_in_the_access_log_and_no_traceback_is_left_unexplained(server: Server) -> None:
    exchange(server.port, request("/echo/logged?key=secret-value", b"{}", "Connection: close"))

    wait_until(lambda: "/echo/logged" in server.process.log(), 5, "the access line")
    line = next(line for line in server.process.log().splitlines() if "/echo/logged" in line)
    assert '"POST /echo/logged?key=' in line and " 200 " in line
    assert "secret-value" not in line


def test_an_answer_not_made_within_the_http_timeout_is_a_503_in_googles_shape(deployment: Deployment) -> None:
    timed = start_server(deployment, "apps-timed", "--http-timeout", "1")

    answer = exchange(timed.port, request("/sleeps", b"{}"))

    assert answer.status == 503
    assert answer.json()["error"]["status"] == "UNAVAILABLE"
    assert answer.seconds < 10  # Daphne checks every 2 s; the application would have slept 30
    assert answer.closed
