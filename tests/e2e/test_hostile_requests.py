"""Hostile bytes against a real gateway (Daphne, a headless executor, the fake upstream), sent as raw HTTP.

Raw sockets, because HTTP clients normalise exactly what an attacker would not:
percent-encoded CR/LF and NUL in the path, doubled slashes, repeated parameters.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest

from tests.e2e.harness import Deployment, Gateway, ScriptedExecutor, ThreadedUpstream

JSON = "application/json; charset=UTF-8"


def raw_request(gateway: Gateway, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple:
    """(status, headers, body) of one HTTP/1.1 request whose request target is sent byte for byte."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    if answer_headers.get("transfer-encoding") == "chunked":
        content = dechunked(content)
    return int(status_line.split()[1]), answer_headers, content


def dechunked(content: bytes) -> bytes:
    body = b""
    while content:
        size_line, _, content = content.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, content = body + content[:size], content[size + 2 :]
    return body


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/v1beta/models/gemini-2.5-flash%3Falt=x:generateContent", 400),
        ("/v1beta/models/gemini-2.5-flash%23frag:generateContent", 400),
        ("/v1beta/models/gemini%0d%0a:generateContent", 400),
        ("/v1beta/models/gemini%00:generateContent", 400),
        ("/v1beta/models/gemini-%C3%BC:generateContent", 400),
        ("/v1beta/models/gemini-2.5-flash:generateContent?alt=json&alt=sse", 400),
        ("/v1beta/models/gemini-2.5-flash:generateContent?" + "&".join(f"p{i}=1" for i in range(1001)), 400),
        # A real route now: without an upload protocol it is Google's 400, not a 404.
        ("/upload/v1beta/files", 400),
        ("/upload/v1beta/files/x", 404),
        ("/v1beta", 404),
        ("//v1beta/models", 404),
        ("/v1beta/models%0a", 404),
    ],
)
def test_hostile_targets_get_googles_shape_and_never_reach_the_upstream(
    gateway: Gateway, upstream: ThreadedUpstream, proxy_key: str, target: str, status: int
) -> None:
    seen_before = len(upstream.requests)

    got, headers, content = raw_request(
        gateway, "POST", target, {"x-goog-api-key": proxy_key, "Content-Type": "application/json"}, b"{}"
    )

    assert got == status, content
    assert headers["content-type"] == JSON
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(content)["error"]["code"] == status
    assert len(upstream.requests) == seen_before


def test_a_json_body_nested_100k_deep_is_invalid_argument(gateway: Gateway, proxy_key: str) -> None:
    body = b'{"contents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    got, _, content = raw_request(
        gateway, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": proxy_key}, body
    )

    assert got == 400
    assert json.loads(content)["error"]["status"] == "INVALID_ARGUMENT"


def test_a_browser_preflight_is_answered_and_the_call_is_readable_cross_origin(
    gateway: Gateway, proxy_key: str
) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    origin = {"Origin": "https://chat.example"}

    got, headers, _ = raw_request(
        gateway,
        "OPTIONS",
        path,
        {
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-goog-api-key",
        },
    )
    assert got == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "x-goog-api-key" in headers["access-control-allow-headers"]

    body = json.dumps({"contents": [{"parts": [{"text": "from a browser"}]}]}).encode()
    got, headers, _ = raw_request(
        gateway, "POST", path, {**origin, "x-goog-api-key": proxy_key, "Content-Type": "application/json"}, body
    )
    assert got == 200
    assert headers["access-control-allow-origin"] == "*"


def test_an_executors_html_is_never_served_as_html(deployment: Deployment, executor_token: str, proxy_key: str) -> None:
    gateway = deployment.start_gateway("gw-html-executor")
    page = b"<html><script>alert(document.cookie)</script></html>"
    ScriptedExecutor(
        gateway,
        executor_token,
        lambda request: [
            {
                "type": "response_start",
                "status": 200,
                "headers": {"content-type": "text/html", "set-cookie": "sessionid=forged"},
                "data": base64.b64encode(page).decode(),
                "end": True,
            }
        ],
    )
    gateway.wait_for_executors(1)

    got, headers, content = raw_request(
        gateway, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": proxy_key}, b"{}"
    )

    assert got == 200
    assert headers["content-type"] == JSON
    assert headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in headers
    assert content == page  # relayed untouched, but never as a page of the gateway's origin
