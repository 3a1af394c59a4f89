"""Hostile bytes against a real gateway: no 5xx of its own, Google's shape, no hang, no secret leaked.

Two generators drive one real gateway (Daphne, a headless executor, the fake
upstream):

- schemathesis, from the OpenAPI description the project publishes
  (docs/openapi.yaml), with valid and invalid bodies, parameters and headers;
- Hypothesis over raw HTTP/1.1, for what no schema describes: percent-encoded
  separators and control bytes in paths, repeated and oddly spelled query
  parameters, deep JSON, declared lengths that lie, odd methods.

Afterwards the gateway must still serve, its executor must still be
connected, usage recording must still work, and the member's key must appear
in no log and in nothing the upstream received. Example counts are bounded
so that the suite stays within CI's time (GEMPROXY_FUZZ_EXAMPLES raises them
for a longer run by hand).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections import Counter
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

EXAMPLES = int(os.environ.get("GEMPROXY_FUZZ_EXAMPLES", "60"))
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
API_PREFIXES = ("/v1", "/v1beta", "/v1alpha", "/upload")
# The gateway's own 5xx are refusals it was built to give: no executor free
# (503) or an upstream too slow (504). Anything else of 500 or above is a bug.
ALLOWED_5XX = {503, 504}
ANSWER_WITHIN_SECONDS = 15.0

schema = schemathesis.openapi.from_path(SCHEMA_PATH)


def _is_api_path(path: str) -> bool:
    path = "/" + path.lstrip("/")
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES)


def assert_google_error(status: int, content_type: str, body: bytes) -> None:
    """An error of the API is Google's JSON: ``{"error": {"code": status, "message", "status"}}``."""
    assert content_type.startswith("application/json"), f"{status} with content type {content_type!r}: {body[:200]!r}"
    error = json.loads(body)["error"]
    assert error["code"] == status, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["status"], str) and error["status"].isupper()


# schemathesis: the published description


def _google_shaped_errors(ctx, response, case) -> None:
    if response.status_code >= 400 and _is_api_path(case.formatted_path):
        assert_google_error(response.status_code, response.headers.get("content-type", [""])[0], response.content)


def _no_server_error_of_ours(ctx, response, case) -> None:
    assert response.status_code < 500 or response.status_code in ALLOWED_5XX, response.content[:500]


def _safe_content_type(ctx, response, case) -> None:
    if not _is_api_path(case.formatted_path):
        return  # a version outside the enum makes a site path: the site's own pages answer it
    assert response.headers.get("x-content-type-options", [""])[0] == "nosniff"
    if response.status_code != 204:  # a CORS preflight's answer has no body, so no type
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(("application/json", "text/event-stream")), content_type


CHECKS = [
    schemathesis.check(_no_server_error_of_ours),
    schemathesis.check(_google_shaped_errors),
    schemathesis.check(_safe_content_type),
]


@schema.include(path_regex="^/{version}/models").parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_published_api_never_fails_on_our_side(case, gateway: Gateway, proxy_key: str) -> None:
    started = time.monotonic()
    case.call_and_validate(
        base_url=gateway.url,
        headers={"x-goog-api-key": proxy_key},
        checks=CHECKS,
        timeout=ANSWER_WITHIN_SECONDS,
    )
    assert time.monotonic() - started < ANSWER_WITHIN_SECONDS


# Hypothesis: raw HTTP/1.1

HOSTILE_PIECES = [
    "%00", "%0d%0a", "%0a", "%3f", "%3F", "%23", "%2f", "%2F", "%5c", "%25", "%c3%bc", "%ff", "%", "%zz",
    "..", ".", "//", ":", "%3a", "?", "#", ";", "~", "@", "ü", "\u202e", "gemini-2.5-flash", "tunedModels",
    "models", "files", "x" * 300,
]  # fmt: skip
PREFIXES = [
    "/v1beta/models/", "/v1/models/", "/v1alpha/models/", "/v1beta/", "/v1beta", "//v1beta/models/",
    "/upload/v1beta/files", "/v1beta/tunedModels/", "/healthz", "/me/", "/api/v1/me/keys", "/admin/login/",
    "/executor/", "/",
]  # fmt: skip
ACTIONS = ["", ":generateContent", ":streamGenerateContent", ":countTokens", ":embedContent", "%3AgenerateContent",
           ":batchEmbedContents", ":fooBar", ":"]  # fmt: skip
METHODS = ["GET", "POST", "POST", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"]
KEY_NAMES = ["key", "%6Bey", "k%65y", "%6b%65%79", "KEY", "Key", "key%00"]


def _json_values(depth: int = 4):
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["valid", "json", "deep", "bytes", "empty", "nul"]))
    if kind == "valid":
        text = draw(st.text(max_size=50))
        return json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()
    if kind == "json":
        return json.dumps(draw(_json_values())).encode()
    if kind == "deep":
        depth = draw(st.sampled_from([50, 200, 5_000, 100_000]))
        opener = draw(st.sampled_from(["[", '{"a":']))
        return (opener * depth).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "nul":
        return b'{"contents": [{"parts": [{"text": "a\x00b"}]}], "\x00": 1}'
    return b""


@st.composite
def requests(draw, secret: str) -> tuple[bytes, str]:
    """A raw HTTP/1.1 request and its path."""
    method = draw(st.sampled_from(METHODS))
    path = draw(st.sampled_from(PREFIXES)) + "".join(draw(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=4)))
    path += draw(st.sampled_from(ACTIONS))
    params = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["alt", "alt", "pageSize", "pageToken", "x", "%61lt", "$alt"]))
        value = draw(st.sampled_from(["sse", "json", "proto", "", "%00", "%0d%0a", "1e9", "-1", "a&b"]))
        params.append(f"{name}={value}")
    if draw(st.booleans()):
        params.append(f"{draw(st.sampled_from(KEY_NAMES))}={secret}")
    if draw(st.integers(0, 20)) == 0:
        params.extend(f"p{i}=1" for i in range(1_500))
    target = path + ("?" + "&".join(params) if params else "")
    headers = [("Host", "127.0.0.1")]
    if draw(st.booleans()):
        headers.append((draw(st.sampled_from(["x-goog-api-key", "X-Goog-Api-Key", "Authorization"])), secret))
        if headers[-1][0] == "Authorization":
            headers[-1] = ("Authorization", f"Bearer {secret}")
    headers.append(("Content-Type", draw(st.sampled_from(["application/json", "text/plain", "", "multipart/x"]))))
    body = draw(bodies()) if method not in ("GET", "HEAD") or draw(st.booleans()) else b""
    framing = draw(st.sampled_from(["length", "length", "chunked", "short-length"]))
    if framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "short-length" and body:
        # A length shorter than the body: the rest is read as the next request on this connection.
        headers.append(("Content-Length", str(len(body) // 2)))
        payload = body
    else:
        headers.append(("Content-Length", str(len(body))))
        payload = body
    headers.append(("Connection", "close"))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("utf-8") + payload, path


def send_raw(gateway: Gateway, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; its status, headers and body (0 when the server just closed)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=ANSWER_WITHIN_SECONDS) as sock:
        sock.sendall(raw)
        received = b""
        deadline = time.monotonic() + ANSWER_WITHIN_SECONDS
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError(f"no complete answer within {ANSWER_WITHIN_SECONDS}s: {received[:300]!r}")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        return 0, {}, received
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return status, headers, body


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def test_hostile_raw_requests_get_google_shaped_answers_in_time(gateway: Gateway, proxy_key: str) -> None:
    seen: list[tuple[int, str]] = []
    # One well-formed call among the hostile ones, always: without it a run may draw none
    # (1 in 250 draws is one), and "nothing got through" would then prove nothing about the gateway.
    well_formed = (
        b"GET /v1beta/models/gemini-2.5-flash HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"x-goog-api-key: {proxy_key}\r\n".encode()
        + b"Connection: close\r\n\r\n",
        "/v1beta/models/gemini-2.5-flash",
    )

    @given(request=requests(proxy_key))
    @example(request=well_formed)
    @settings(max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def one(request: tuple[bytes, str]) -> None:
        raw, path = request
        note(repr(raw[:600]))
        status, headers, body = send_raw(gateway, raw)
        seen.append((status, path))
        if status == 0:
            return  # Twisted closed a connection it could not parse: acceptable for malformed HTTP
        assert status < 500 or status in ALLOWED_5XX, (raw[:300], status, body[:300])
        if status == 400 and not body:
            return  # Twisted's empty 400 for malformed HTTP
        if raw.startswith(b"HEAD "):
            return  # an answer to HEAD has headers only
        if _is_api_path(path.split("?")[0]) and status >= 400:
            assert_google_error(status, headers.get("content-type", ""), body)
        if _is_api_path(path.split("?")[0]):
            assert headers.get("x-content-type-options") == "nosniff", headers
            if status != 204:
                assert headers.get("content-type", "").startswith(("application/json", "text/event-stream")), headers

    one()
    by_status = Counter(status for status, _ in seen)
    print(f"raw requests tried: {len(seen)}; answers by status: {dict(sorted(by_status.items()))}")
    assert by_status[200] > 0, "no request got through at all: the generator is off"


# Afterwards: still serving, nothing leaked, usage still recorded


def _usage_count(deployment: Deployment) -> int:
    with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM accounts_usagerecord").fetchone()[0]


def test_after_the_fuzzing_the_gateway_serves_records_and_has_leaked_nothing(
    deployment: Deployment, gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    before = _usage_count(deployment)
    payload = b'{"contents": [{"parts": [{"text": "still here"}]}]}'
    head = (
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
        f"x-goog-api-key: {proxy_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    status, _, body = send_raw(gateway, head.encode() + payload)

    assert status == 200, body
    assert gateway.health()["executors"] == 1
    wait_until(lambda: _usage_count(deployment) > before, 10, "the usage record of the last call")
    for process in deployment.processes:
        assert proxy_key not in process.log(), f"the key is in {process.name}'s log"
    for request in upstream.requests:
        assert proxy_key.encode() not in request.body
        assert proxy_key not in request.query
        assert proxy_key not in json.dumps(dict(request.headers))
