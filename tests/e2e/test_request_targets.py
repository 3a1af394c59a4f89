"""Request lines as RFC 9112 allows or as attackers write them: served as their path, or refused in Google's shape."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.harness import Gateway
from tests.e2e.raw_http import exchange


def get(target: bytes, *headers: bytes) -> bytes:
    host = [] if any(header.lower().startswith(b"host:") for header in headers) else [b"Host: 127.0.0.1"]
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", *host, b"Connection: close", *headers, b"", b""])


@pytest.mark.parametrize("scheme", [b"http", b"https", b"HTTP"])
def test_an_absolute_form_uri_is_served_as_its_path(gateway: Gateway, proxy_key: str, scheme: bytes) -> None:
    target = scheme + b"://127.0.0.1:%d/v1beta/models?pageSize=2" % gateway.port

    answer = exchange(gateway.port, get(target, b"x-goog-api-key: " + proxy_key.encode()))

    assert answer.status == 200, answer.body
    assert len(answer.json()["models"]) == 2


def test_an_absolute_form_uri_takes_its_host_from_the_uri(gateway: Gateway) -> None:
    # RFC 9112 section 3.2.2: the URI's host replaces the Host header, which Django then checks.
    target = b"http://127.0.0.1:%d/me/login/" % gateway.port

    answer = exchange(gateway.port, get(target, b"Host: not-allowed.example"))

    assert answer.status == 200
    assert b"<form" in answer.body


@pytest.mark.parametrize(
    "target",
    [
        *(b"/v1beta/models\x7f", b"/v1beta/models/gemini\x80", b"/v1beta/models?q=\xa0", b"v1beta/models", b"*"),
        *(b"ftp://127.0.0.1/v1beta/models", b"http://user:secret@127.0.0.1/v1beta/models", b"http:///v1beta/models"),
    ],
    ids=["DEL", "non-ASCII path", "non-ASCII query", "relative", "asterisk", "other scheme", "user info", "no host"],
)
def test_a_target_no_uri_could_be_is_refused_in_googles_shape(gateway: Gateway, target: bytes) -> None:
    answer = exchange(gateway.port, get(target))

    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert answer.closed


@pytest.mark.parametrize("target", [b"/v1beta/models/gemini%0A2.5", b"/v1beta/models/gemini%0D%0AX-Forged:%201"])
def test_an_encoded_newline_is_passed_on_to_the_application(gateway: Gateway, proxy_key: str, target: bytes) -> None:
    # The application answers it (a JSON 404 from the gateway's routes); the
    # server neither breaks on it nor lets it split a header.
    answer = exchange(gateway.port, get(target, b"x-goog-api-key: " + proxy_key.encode()))

    assert 400 <= answer.status < 500
    assert answer.headers["server"] == "daphne"  # Daphne names itself on the application's answers only
    assert "x-forged" not in answer.headers


def test_a_raw_newline_in_the_request_line_is_refused_and_forges_no_log_line(gateway: Gateway) -> None:
    answer = exchange(gateway.port, b"GET /v1beta/models\nFORGED-LINE HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    assert answer.status == 400
    assert not any(line.startswith("FORGED-LINE") for line in gateway.process.log().splitlines())


def test_a_client_cannot_choose_the_root_path(gateway: Gateway) -> None:
    # Daphne would take it from this header and strip it, so "/x/v1beta/models" would be the API.
    answer = exchange(gateway.port, get(b"/x/v1beta/models", b"Daphne-Root-Path: /x"))

    assert answer.status == 404


def test_an_unknown_websocket_path_is_refused_at_the_handshake_without_a_traceback(gateway: Gateway) -> None:
    url = gateway.url.replace("http", "ws", 1)
    log_before = len(gateway.process.log())

    for path in ["/ws/nothing-here", "/v1beta/models", "/ws/executor/extra"]:
        with pytest.raises(InvalidStatus) as refused:
            connect(url + path, open_timeout=10)
        assert refused.value.response.status_code == 403

    log = gateway.process.log()[log_before:]
    assert "Traceback" not in log
    assert "No route found" not in log
