"""The real access log of a real gateway: no secret in any spelling, no forged field."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.harness import Gateway
from tests.e2e.raw_http import exchange

SPELLINGS = ["%6Bey", "k%65y", "%6b%65%79", "KEY", "key%00", "Key", "k+ey", "api_key", "access_token", "token"]


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def test_a_key_that_authenticates_with_an_encoded_name_is_not_logged(gateway: Gateway, proxy_key: str) -> None:
    answer = exchange(gateway.port, get(f"/v1beta/models?%6Bey={proxy_key}&pageSize=1"))

    assert answer.status == 200, answer.body  # Django decoded the name: this is the key
    log = gateway.process.log()
    assert proxy_key not in log
    assert '"GET /v1beta/models?%6Bey=REDACTED&pageSize=1" 200' in log


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_secret_name_is_redacted(gateway: Gateway, spelling: str) -> None:
    secret = f"gpk_not_a_real_key_{secrets.token_hex(8)}"

    exchange(gateway.port, get(f"/v1beta/models?alt=json&{spelling}={secret}"))

    log = gateway.process.log()
    assert secret not in log
    assert f'"GET /v1beta/models?alt=json&{spelling}=REDACTED"' in log


def test_a_secret_in_a_refused_request_is_redacted_too(gateway: Gateway) -> None:
    head = "POST /v1beta/models/x:generateContent?k%65y=gpk_refused_secret HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    exchange(gateway.port, f"{head}Content-Length: 9999999999\r\n\r\n".encode())

    log = gateway.process.log()
    assert "gpk_refused_secret" not in log
    assert '"POST /v1beta/models/x:generateContent?k%65y=REDACTED" 400' in log


def test_a_quote_in_the_request_line_cannot_close_the_logged_field(gateway: Gateway) -> None:
    exchange(gateway.port, get('/v1beta/models?q="200'))

    assert '"GET /v1beta/models?q=\\x22200"' in gateway.process.log()
