"""The headless agent streams a large task body into its upstream request as the frames arrive,
and a hostile piece of it still ends the task cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from executors import protocol
from tests import agent_harness
from tests.agent_harness import collect

gateway = agent_harness.gateway
fake = agent_harness.fake
start_agent = agent_harness.start_agent

UPLOAD_PATH = "/upload/v1beta/files"


class RecordingUpstream:
    """An upstream that notes when a request's head arrives, before its body is read."""

    def __init__(self) -> None:
        self.head_arrived = asyncio.Event()
        self.bodies: list[bytes] = []
        self.broken = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.head_arrived.set()
        try:
            body = await request.read()
        except BaseException:  # the caller went away: a cancellation, or a reset connection
            self.broken.set()
            raise
        self.bodies.append(body)
        return web.json_response({"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)})


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    recording = RecordingUpstream()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(UPLOAD_PATH, recording.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recording.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recording
    await runner.cleanup()


@pytest.fixture
async def link(start_agent, gateway, upstream):
    await start_agent(upstream=upstream.url, concurrency=2)
    return await gateway.next_link()


async def send_request(link, task_id: str, pieces: int) -> None:
    await link.send(
        {
            "type": "request",
            "id": task_id,
            "method": "POST",
            "path": UPLOAD_PATH,
            "query": "upload_id=u1&upload_protocol=resumable",
            "headers": {"content-type": "application/octet-stream", "x-goog-upload-command": "upload, finalize"},
            "body_chunks": pieces,
        }
    )


async def send_pieces(link, task_id: str, pieces: list[bytes], first_seq: int = 0) -> None:
    for seq, piece in enumerate(pieces, start=first_seq):
        await link.send({"type": "request_body", "id": task_id, "seq": seq, "data": protocol.encode_body(piece)})


async def test_the_agent_announces_binary_bodies(link) -> None:
    assert link.hello["features"] == ["binary_body", "binary_frames"]


async def test_a_large_body_reaches_the_upstream_before_its_last_piece_arrives(link, upstream) -> None:
    data = os.urandom(12 * protocol.BODY_CHUNK_BYTES + 77)
    pieces = protocol.split_body(data)
    await send_request(link, "t1", len(pieces))
    await send_pieces(link, "t1", pieces[:6])

    await asyncio.wait_for(upstream.head_arrived.wait(), 5)  # the call began with half the body still to come
    await send_pieces(link, "t1", pieces[6:], first_seq=6)
    relayed = await collect(link, "t1")

    assert relayed.status == 200
    assert upstream.bodies == [data]


async def test_a_bad_piece_in_a_streamed_body_aborts_the_upstream_call_and_fails_the_task(link, upstream) -> None:
    pieces = protocol.split_body(os.urandom(8 * protocol.BODY_CHUNK_BYTES))
    await send_request(link, "t2", len(pieces))
    await send_pieces(link, "t2", pieces[:5])
    await asyncio.wait_for(upstream.head_arrived.wait(), 5)

    await link.send({"type": "request_body", "id": "t2", "seq": 5, "data": "!!not base64!!"})
    relayed = await collect(link, "t2")

    assert relayed.error is not None and relayed.error["code"] == "bad_task"
    await asyncio.wait_for(upstream.broken.wait(), 5)
    assert upstream.bodies == []


async def test_a_piece_out_of_order_in_a_streamed_body_fails_the_task(link, upstream) -> None:
    pieces = protocol.split_body(os.urandom(6 * protocol.BODY_CHUNK_BYTES))
    await send_request(link, "t3", len(pieces))
    await send_pieces(link, "t3", pieces[:5])

    await send_pieces(link, "t3", pieces[5:], first_seq=7)
    relayed = await collect(link, "t3")

    assert relayed.error is not None and relayed.error["code"] == "bad_task"
    assert upstream.bodies == []


async def test_pieces_after_the_last_are_ignored_and_the_connection_goes_on(link, upstream) -> None:
    data = os.urandom(5 * protocol.BODY_CHUNK_BYTES + 1)
    pieces = protocol.split_body(data)
    await send_request(link, "t4", len(pieces))
    await send_pieces(link, "t4", pieces)
    await send_pieces(link, "t4", [b"extra"], first_seq=len(pieces))
    relayed = await collect(link, "t4")

    assert relayed.status == 200 and upstream.bodies == [data]
    await link.send({"type": "ping", "nonce": "alive"})
    assert (await link.next_control())["nonce"] == "alive"
