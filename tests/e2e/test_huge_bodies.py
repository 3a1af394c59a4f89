"""A body over its route's limit costs the gateway nothing: refused at the headers, or cut off as it arrives.

Daphne alone would read a whole body (memory and a temp file) before the
application could refuse it; these requests never get that far.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.e2e.harness import Deployment, Gateway
from tests.e2e.raw_http import chunk, exchange, flood

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
API_LIMIT = 20 * 1024 * 1024  # GEMPROXY_MAX_BODY_BYTES's default
SITE_LIMIT = 2_621_440  # GEMPROXY_MAX_SITE_BODY_BYTES's default
UPLOAD_LIMIT = 1000  # set for this module's gateway: the upload route has a setting of its own
TWO_GIB = 2 * 1024**3


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, executor_token: str, upstream) -> Gateway:
    gateway = deployment.start_gateway(GEMPROXY_MAX_UPLOAD_BODY_BYTES=str(UPLOAD_LIMIT))
    deployment.start_agent(gateway, executor_token, upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


def post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers, "", ""]
    return "\r\n".join(lines).encode()


def rss_bytes(gateway: Gateway) -> int:
    status = Path(f"/proc/{gateway.process.popen.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def assert_refused_as_too_large(answer, limit: int) -> None:
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.json() == {
        "error": {
            "code": 400,
            "message": f"Request payload size exceeds the limit: {limit} bytes.",
            "status": "INVALID_ARGUMENT",
        }
    }


def test_a_declared_2_gib_body_is_refused_at_once_without_sending_it(gateway: Gateway) -> None:
    answer = exchange(gateway.port, post_head(GENERATE, f"Content-Length: {TWO_GIB}"))

    assert_refused_as_too_large(answer, API_LIMIT)
    assert answer.seconds < 2
    assert answer.closed
    assert gateway.health()["executors"] == 1


def test_no_100_continue_comes_before_the_refusal(gateway: Gateway) -> None:
    answer = exchange(gateway.port, post_head(GENERATE, f"Content-Length: {TWO_GIB}", "Expect: 100-continue"))

    assert answer.status == 400  # http.client would have returned the 100 first


def test_many_huge_declarations_at_once_leave_the_gateway_responsive(gateway: Gateway) -> None:
    answers: list = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(exchange(gateway.port, post_head(GENERATE, f"Content-Length: {TWO_GIB}")))
        )
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [answer.status for answer in answers] == [400] * 20
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).status_code == 200


def test_a_chunked_body_that_keeps_coming_is_cut_off_soon_after_the_limit(gateway: Gateway) -> None:
    rss_before = rss_bytes(gateway)

    result = flood(gateway.port, post_head(GENERATE, "Transfer-Encoding: chunked"), chunk(b"x" * 65536), 3 * API_LIMIT)

    assert result.cut_off, f"the server read all {result.accepted} bytes"
    assert API_LIMIT < result.accepted < 1.5 * API_LIMIT
    if result.answer is not None:  # read before the reset reached us
        assert_refused_as_too_large(result.answer, API_LIMIT)
    assert rss_bytes(gateway) - rss_before < 64 * 1024 * 1024


def test_a_body_longer_than_declared_is_not_read_on(gateway: Gateway) -> None:
    # Only the declared bytes are the body, and little more is read while the
    # request is answered; what follows is a malformed next request.
    result = flood(
        gateway.port,
        post_head(GENERATE, "Content-Length: 2", "Connection: keep-alive") + b"{}",
        b"x" * 65536,
        3 * API_LIMIT,
    )

    assert result.accepted < API_LIMIT


def test_each_route_has_its_own_limit(gateway: Gateway) -> None:
    just_over_the_site_limit = f"Content-Length: {SITE_LIMIT + 1}"

    site = exchange(gateway.port, post_head("/me/login/", just_over_the_site_limit))
    upload = exchange(gateway.port, post_head("/upload/v1beta/files", f"Content-Length: {UPLOAD_LIMIT + 1}"))
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        api = client.post(GENERATE, content=b"{" + b" " * SITE_LIMIT + b"}")

    assert_refused_as_too_large(site, SITE_LIMIT)
    assert_refused_as_too_large(upload, UPLOAD_LIMIT)
    assert api.status_code == 403  # through to the API, which wants a key
    assert api.json()["error"]["status"] == "PERMISSION_DENIED"


def test_a_body_within_the_limit_still_reaches_the_api_in_chunks(gateway: Gateway, proxy_key: str) -> None:
    body = b'{"contents": [{"parts": [{"text": "chunked within the limit"}]}]}'
    head = post_head(GENERATE, "Transfer-Encoding: chunked", f"x-goog-api-key: {proxy_key}", "Connection: close")

    answer = exchange(gateway.port, head + chunk(body[:20]) + chunk(body[20:]) + b"0\r\n\r\n")

    assert answer.status == 200, answer.body
    assert b"echo: chunked within the limit" in answer.body


def test_executors_and_other_clients_are_served_through_a_flood(gateway: Gateway, proxy_key: str) -> None:
    stop = threading.Event()
    floods: list = []

    def keep_flooding() -> None:
        deadline = time.monotonic() + 20
        head = post_head(GENERATE, "Transfer-Encoding: chunked")
        while not stop.is_set() and time.monotonic() < deadline and len(floods) < 50:
            floods.append(flood(gateway.port, head, chunk(b"x" * 65536), 3 * API_LIMIT))

    flooder = threading.Thread(target=keep_flooding)
    flooder.start()
    try:
        time.sleep(0.2)
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            answers = [
                client.post(
                    GENERATE,
                    json={"contents": [{"parts": [{"text": f"during the flood {n}"}]}]},
                    headers={"x-goog-api-key": proxy_key},
                )
                for n in range(5)
            ]
    finally:
        stop.set()
        flooder.join(30)

    assert [answer.status_code for answer in answers] == [200] * 5
    assert floods and all(result.cut_off for result in floods)
    assert gateway.health()["executors"] == 1
    assert "WSDISCONNECT" not in gateway.process.log()
