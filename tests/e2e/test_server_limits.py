"""Limits the server already holds before gemproxy's own checks; these tests keep them from slipping.

The HTTP channel refuses a request line plus headers over 16 KiB or more than 500 headers, as
Twisted's ``HTTPChannel`` did, with a 400 in Google's shape, and closes; Daphne
closes a WebSocket whose message exceeds 1 MiB (``--websocket-max-message-size``).
"""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.harness import Gateway
from tests.e2e.raw_http import exchange


def get_with_headers(*headers: str) -> bytes:
    return "\r\n".join(["GET /healthz HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


def test_headers_over_16_kib_are_refused(gateway: Gateway) -> None:
    answer = exchange(gateway.port, get_with_headers(*(f"x-filler-{n}: {'a' * 1000}" for n in range(17))))

    assert answer.status == 400
    assert answer.closed


def test_more_than_500_headers_are_refused(gateway: Gateway) -> None:
    answer = exchange(gateway.port, get_with_headers(*(f"x{n}: a" for n in range(501))))

    assert answer.status == 400


def test_headers_within_the_limits_are_served(gateway: Gateway) -> None:
    answer = exchange(
        gateway.port, get_with_headers("Connection: close", *(f"x-filler-{n}: {'a' * 1000}" for n in range(14)))
    )

    assert answer.status == 200


def first_close(gateway: Gateway, token: str, message: str) -> ConnectionClosed:
    url = gateway.url.replace("http", "ws", 1) + "/ws/executor"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None) as socket:
        socket.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    return closed.value


def test_an_executor_message_over_1_mib_is_dropped_before_the_consumer_sees_it(
    gateway: Gateway, executor_token: str
) -> None:
    within = first_close(gateway, executor_token, "x" * (1024 * 1024 - 200))
    over = first_close(gateway, executor_token, "x" * (1024 * 1024 + 1))

    assert within.rcvd is not None  # the consumer read it, and closed with a code of its own: not a hello
    assert over.rcvd is None  # Daphne dropped the connection; the consumer never answered
    assert gateway.health()["executors"] == 1  # the connected executor is not affected
