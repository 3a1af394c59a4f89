"""A stand-in gateway for testing the headless executor (executors/agent.py) against the fake upstream.

The fixtures are plain pytest fixtures; a test module takes them by assignment
(`link = agent_harness.link`), which pytest finds like fixtures defined there.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from executors import protocol
from executors.agent import Agent, AgentConfig
from tests.fake_upstream import FakeUpstream

TOKEN = "gpe_test-executor-token"
AGENT_KEY = "agent-upstream-key"
REPO_ROOT = Path(__file__).resolve().parent.parent
DAPHNE_MAX_MESSAGE = 1024 * 1024
STREAM_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
GENERATE_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


class ExecutorLink:
    """The gateway's end of one executor connection, as a test sees it."""

    def __init__(self, ws: web.WebSocketResponse, binary_frames: bool = False):
        self.ws = ws
        # Whether the welcome took up binary_frames: then request_body frames go out binary.
        self.binary_frames = binary_frames
        self.binary_received = 0
        self.hello: dict[str, Any] = {}
        self.control: asyncio.Queue[dict] = asyncio.Queue()  # frames without an id: hello, pong
        self.by_id: defaultdict[str, asyncio.Queue[dict]] = defaultdict(asyncio.Queue)
        self.largest_frame = 0
        self.closed = asyncio.Event()

    async def send(self, frame: dict) -> None:
        await self.ws.send_str(protocol.dumps(frame))

    async def send_body_piece(self, frame: dict) -> None:
        """A request_body frame whose data is bytes, as the welcome agreed: binary, or base64 text."""
        if self.binary_frames:
            await self.ws.send_bytes(protocol.binary_frame(frame))
        else:
            await self.ws.send_str(protocol.text_frame(frame))

    async def next_for(self, task_id: str, within: float = 5) -> dict:
        return await asyncio.wait_for(self.by_id[task_id].get(), within)

    async def next_control(self, within: float = 5) -> dict:
        return await asyncio.wait_for(self.control.get(), within)

    def received(self, message: str | bytes) -> None:
        self.largest_frame = max(self.largest_frame, len(message))
        if isinstance(message, bytes):
            self.binary_received += 1
            frame, data = protocol.split_binary_frame(message)
            frame["data"] = data
        else:
            frame = protocol.loads(message)
        if "id" in frame:
            self.by_id[frame["id"]].put_nowait(frame)
        else:
            self.control.put_nowait(frame)


class FakeGateway:
    """Plays the gateway: checks the Bearer token, welcomes each executor, and hands the link to the test."""

    def __init__(self, heartbeat_interval: float = 15, heartbeat_timeout: float = 60, binary_frames: bool = False):
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        # Like a gateway of this version (True) or of one before binary frames (False).
        self.binary_frames = binary_frames
        self.links: asyncio.Queue[ExecutorLink] = asyncio.Queue()
        self.refused = asyncio.Queue[str]()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(protocol.WEBSOCKET_PATH, self._executor_socket)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def next_link(self, within: float = 5) -> ExecutorLink:
        return await asyncio.wait_for(self.links.get(), within)

    async def _executor_socket(self, request: web.Request) -> web.WebSocketResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.refused.put_nowait(request.headers.get("Authorization", ""))
            raise web.HTTPForbidden()
        # Daphne closes a socket whose incoming message exceeds 1 MiB; so does this stand-in.
        ws = web.WebSocketResponse(max_msg_size=DAPHNE_MAX_MESSAGE)
        await ws.prepare(request)
        link = ExecutorLink(ws)
        try:
            first = await ws.receive(timeout=5)
            link.hello = protocol.loads(first.data)
            welcome = {
                "type": "welcome",
                "protocol": 1,
                "executor_id": link.hello["executor_id"],
                "account": "test-account",
                "heartbeat_interval": self.heartbeat_interval,
                "heartbeat_timeout": self.heartbeat_timeout,
            }
            if self.binary_frames and protocol.FEATURE_BINARY_FRAMES in link.hello.get("features", []):
                welcome["features"] = [protocol.FEATURE_BINARY_FRAMES]
                link.binary_frames = True
            await link.send(welcome)
            self.links.put_nowait(link)
            async for message in ws:
                if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                    link.received(message.data)
        finally:
            link.closed.set()
        return ws


@dataclass
class Relayed:
    """A task's answer as the agent relayed it."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    body_frames: list[dict] = field(default_factory=list)
    end: dict | None = None
    error: dict | None = None


async def send_task(
    link: ExecutorLink,
    body: bytes = b"",
    *,
    path: str = GENERATE_PATH,
    query: str = "",
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> str:
    """A task as the gateway sends it: with binary frames, the body's first piece rides in the request frame."""
    task_id = uuid.uuid4().hex
    pieces = protocol.split_body(body)
    request = {
        "type": "request",
        "id": task_id,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers if headers is not None else {"content-type": "application/json"},
        "body_chunks": len(pieces),
    }
    sent = 0
    if link.binary_frames and pieces:
        await link.send_body_piece({**request, "data": pieces[0]})
        sent = 1
    else:
        await link.send(request)
    for seq in range(sent, len(pieces)):
        await link.send_body_piece({"type": "request_body", "id": task_id, "seq": seq, "data": pieces[seq]})
    return task_id


def data_of(frame: dict) -> bytes:
    """A body frame's bytes: raw from a binary frame, decoded from a text one."""
    data = frame["data"]
    return data if isinstance(data, bytes) else protocol.decode_body(data)


async def collect(link: ExecutorLink, task_id: str, relayed: Relayed | None = None) -> Relayed:
    """Reads the task's frames up to the end of the response or an error (skipping an ack)."""
    relayed = relayed or Relayed()
    while relayed.end is None and relayed.error is None:
        frame = await link.next_for(task_id)
        if frame["type"] == "response_start":
            relayed.status, relayed.headers = frame["status"], frame["headers"]
            if "data" in frame:  # the first piece; with "end", a small answer whole in its first frame
                relayed.body += data_of(frame)
            if frame.get("end"):
                relayed.end = frame
        elif frame["type"] == "response_body":
            relayed.body_frames.append(frame)
            relayed.body += data_of(frame)
        elif frame["type"] == "response_end":
            relayed.end = frame
        elif frame["type"] == "error":
            relayed.error = frame
    return relayed


def generate_body(text: str) -> bytes:
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(params=[False, True], ids=["text frames", "binary frames"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[FakeGateway]:
    """A stand-in gateway of each kind: one that sends only text frames, and one that agrees to binary frames."""
    stand_in = FakeGateway(binary_frames=request.param)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def start_agent(gateway: FakeGateway, fake: FakeUpstream) -> AsyncIterator[Callable[..., Awaitable[Agent]]]:
    runners: list[asyncio.Task] = []

    async def start(**overrides: Any) -> Agent:
        config = AgentConfig(
            server=gateway.url, token=TOKEN, upstream=fake.url, upstream_key=AGENT_KEY, concurrency=4, label="test"
        )
        agent = Agent(replace(config, **overrides))
        runners.append(asyncio.create_task(agent.run()))
        return agent

    yield start
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)


@pytest.fixture
async def link(start_agent, gateway) -> ExecutorLink:
    await start_agent()
    return await gateway.next_link()
