"""Rotating an executor token or disabling its account cuts off the executors already connected, within 20 s."""

from __future__ import annotations

import json
import re
import time

import httpx2 as httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from executors import protocol
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream

CUT_OFF_SECONDS = 20
# The bound must hold with the default heartbeat terms, not only the e2e deployment's quick ones.
DEFAULT_HEARTBEATS = {"GEMPROXY_HEARTBEAT_INTERVAL": "15", "GEMPROXY_HEARTBEAT_TIMEOUT": "60"}


def raw_executor(gateway: Gateway, token: str) -> ClientConnection:
    """A protocol-v1 executor that said hello and was welcomed; it answers pings while a test waits on it."""
    url = gateway.url.replace("http", "ws", 1) + protocol.WEBSOCKET_PATH
    socket = connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5).__enter__()
    hello = {"type": "hello", "protocol": 1, "executor_id": "raw", "label": "", "software": "raw/1"}
    socket.send(json.dumps({**hello, "max_concurrency": 2}))
    assert json.loads(socket.recv(5))["type"] == "welcome"
    return socket


def close_code_within(socket: ClientConnection, seconds: float) -> int:
    """Serve as a live executor until the gateway closes the socket; its close code."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            frame = json.loads(socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if frame["type"] == "ping":
                socket.send(json.dumps({"type": "pong", "nonce": frame["nonce"]}))
    except ConnectionClosed:
        return socket.close_code
    except TimeoutError:
        pytest.fail(f"the gateway kept the executor connected for {seconds} s")


def assert_refused(gateway: Gateway, token: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        raw_executor(gateway, token)
    assert refused.value.response.status_code == 403


def test_rotating_a_token_with_the_command_cuts_off_its_connected_executors(
    deployment: Deployment, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-rotate", **DEFAULT_HEARTBEATS)
    old = deployment.executor_token("rotate@example.com")
    deployment.start_agent(gateway, old, upstream.url, name="rotate-agent")
    raw = raw_executor(gateway, old)
    gateway.wait_for_executors(2)

    rotated_at = time.monotonic()
    new = deployment.executor_token("rotate@example.com")

    assert close_code_within(raw, CUT_OFF_SECONDS) == protocol.CLOSE_TOKEN_REPLACED
    gateway.wait_for_executors(0, timeout=max(0.5, CUT_OFF_SECONDS - (time.monotonic() - rotated_at)))
    assert_refused(gateway, old)
    time.sleep(2)  # the agent keeps reconnecting with the old token
    assert gateway.health()["executors"] == 0
    raw_executor(gateway, new).close()


def admin_session(gateway: Gateway, deployment: Deployment) -> httpx.Client:
    deployment.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_superuser('root', 'root@example.com', 'pw-root-123')",
    )
    http = httpx.Client(base_url=gateway.url, timeout=10)
    http.get("/admin/login/")
    http.post(
        "/admin/login/",
        data={"username": "root", "password": "pw-root-123", "csrfmiddlewaretoken": http.cookies["csrftoken"]},
    )
    assert "sessionid" in http.cookies, "the admin did not sign in"
    return http


def test_disabling_an_account_in_the_admin_cuts_off_its_connected_executors(
    deployment: Deployment, upstream: ThreadedUpstream
) -> None:
    gateway = deployment.start_gateway("gw-disable", **DEFAULT_HEARTBEATS)
    token = deployment.executor_token("disable@example.com")
    raw = raw_executor(gateway, token)
    gateway.wait_for_executors(1)
    http = admin_session(gateway, deployment)
    listing = http.get("/admin/executors/executoraccount/", params={"q": "disable@example.com"}).text
    [change_url] = set(re.findall(r'href="(/admin/executors/executoraccount/\d+/change/[^"]*)"', listing))

    saved = http.post(
        change_url,
        data={"label": "disable@example.com", "csrfmiddlewaretoken": http.cookies["csrftoken"], "_save": "Save"},
    )

    assert saved.status_code == 302, saved.text[:500]
    assert close_code_within(raw, CUT_OFF_SECONDS) == protocol.CLOSE_ACCOUNT_DISABLED
    assert gateway.health()["executors"] == 0
    assert_refused(gateway, token)
    http.close()
