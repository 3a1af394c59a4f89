"""Calls through the gateway's real ASGI application, with a scripted executor side.

``asgi_call`` sends one request through ``gemproxy_site.handlers.http_application``
exactly as Daphne would hand it over (the path percent-decoded, the raw query
string as sent), so routing and the middleware-less ApiHandler are the ones
in production. ``ScriptedExchanges`` stands in for the dispatcher: it records
every task that would have reached an executor and answers with a head and
body the test chooses (fixtures in tests/api_fixtures.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from asgiref.testing import ApplicationCommunicator

from executors.dispatcher import ResponseHead, Task
from gemproxy_site.handlers import http_application

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json()["error"]


async def asgi_call(
    method: str,
    raw_path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    wait: float = 10,
) -> Answer:
    """One request to the ASGI app; ``raw_path`` is as on the wire (percent-encoded); ``wait``: seconds per step."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    app = ApplicationCommunicator(http_application(), scope)
    await app.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await app.receive_output(wait)
    assert start["type"] == "http.response.start", start
    chunks = []
    while True:
        message = await app.receive_output(wait)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await app.wait(wait)
    answer_headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return Answer(start["status"], answer_headers, b"".join(chunks))


@dataclass
class ScriptedExchanges:
    """Replaces ``gateway.relay.Exchange``: each call's task is kept, and answered with ``head`` and ``pieces``.

    A piece that is an exception is raised where it stands, as a failure in the middle of the body.
    """

    head: ResponseHead = field(default_factory=lambda: ResponseHead(200, {"content-type": "application/json"}))
    pieces: list[bytes | BaseException] = field(default_factory=lambda: [b'{"candidates": []}'])
    tasks: list[Task] = field(default_factory=list)

    def __call__(self, task: Task) -> _ScriptedExchange:
        self.tasks.append(task)
        return _ScriptedExchange(self)


class _ScriptedExchange:
    attempts = 1
    account_label = "scripted"
    refused_by: tuple[str, ...] = ()

    def __init__(self, script: ScriptedExchanges) -> None:
        self._script = script

    async def start(self) -> ResponseHead:
        return self._script.head

    async def body(self) -> AsyncIterator[bytes]:
        for piece in self._script.pieces:
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    async def close(self) -> None:
        pass
