"""In-process executors for tests: a WebSocket to the real consumer, and tasks handed to it as a dispatcher does."""

from __future__ import annotations

import json

from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from executors.models import ExecutorAccount
from executors.registry import get_registry
from gemproxy_site.asgi import application


def hello(executor_id: str = "tab-1", slots: int = 3) -> dict:
    return {
        "type": "hello",
        "protocol": 1,
        "executor_id": executor_id,
        "label": "tab",
        "software": "test/1",
        "max_concurrency": slots,
    }


def new_token(label: str = "ana@example.com") -> str:
    account = ExecutorAccount(label=label)
    secret = account.set_new_token()
    account.save()
    return secret


def communicator(token: str = "", subprotocols: list[str] | None = None) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return WebsocketCommunicator(application, "/ws/executor", headers=headers, subprotocols=subprotocols)


async def connect_executor(token: str, executor_id: str = "tab-1", slots: int = 3) -> WebsocketCommunicator:
    """An executor that said hello and was welcomed."""
    socket = communicator(token)
    connected, _ = await socket.connect()
    assert connected
    await socket.send_to(text_data=json.dumps(hello(executor_id, slots)))
    assert json.loads(await socket.receive_from())["type"] == "welcome"
    return socket


async def send_task(attempt_id: str, body: bytes = b"") -> str:
    """Hand a connected executor a task, as the dispatcher does; the task's reply channel."""
    layer = get_channel_layer()
    reply = await layer.new_channel()
    lease = await get_registry().acquire("m")
    assert lease is not None, "no executor to send the task to"
    await layer.send(
        lease.channel_name,
        {
            "type": "executor.task",
            "attempt_id": attempt_id,
            "reply_channel": reply,
            "method": "POST" if body else "GET",
            "path": "/v1beta/models/m:generateContent" if body else "/v1/models",
            "query": "",
            "headers": {"content-type": "application/json"} if body else {},
            "body": body,
        },
    )
    return reply
