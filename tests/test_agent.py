"""The headless executor (executors/agent.py) against a stand-in gateway and the fake upstream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import string
import sys
import uuid

import pytest

from executors import protocol
from executors.agent import SOFTWARE, backoff_delay, executor_url, log_level
from tests import agent_harness
from tests.agent_harness import (
    AGENT_KEY,
    DAPHNE_MAX_MESSAGE,
    GENERATE_PATH,
    REPO_ROOT,
    STREAM_PATH,
    TOKEN,
    Relayed,
    closed_port,
    collect,
    data_of,
    generate_body,
    send_task,
)

# The harness's fixtures, taken by assignment so that pytest finds them here.
fake = agent_harness.fake
gateway = agent_harness.gateway
start_agent = agent_harness.start_agent
link = agent_harness.link


async def test_hello_names_protocol_executor_id_software_and_max_concurrency(start_agent, gateway):
    agent = await start_agent(concurrency=3, label="build-box")
    hello = (await gateway.next_link()).hello

    assert hello["type"] == "hello"
    assert hello["protocol"] == protocol.PROTOCOL_VERSION
    assert uuid.UUID(hello["executor_id"]).version == 4
    assert hello["executor_id"] == agent.executor_id
    assert hello["software"] == SOFTWARE and SOFTWARE.startswith("gemproxy-agent/")
    assert hello["max_concurrency"] == 3
    assert hello["label"] == "build-box"


async def test_ping_is_answered_with_pong_carrying_the_nonce(link):
    await link.send({"type": "ping", "nonce": "n-17"})

    assert await link.next_control() == {"type": "pong", "nonce": "n-17"}


async def test_a_stream_is_relayed_piece_by_piece_exactly_as_upstream_sent_it(link, fake):
    task_id = await send_task(link, generate_body("stream me #hold #chunks=4"), path=STREAM_PATH, query="alt=sse")

    relayed = Relayed()
    start = await link.next_for(task_id)
    assert start["type"] == "response_start", "answered at once, so no separate ack"
    assert "end" not in start
    assert fake.stream_held.is_set(), "the first piece was relayed while upstream was still holding"
    relayed.status, relayed.headers = start["status"], start["headers"]
    # The head carries the first piece: one frame, not two, before the client's first byte.
    first_piece = data_of(start)
    assert first_piece.startswith(b"data: ") and first_piece.count(b"data: ") == 1
    relayed.body += first_piece
    fake.release()
    await collect(link, task_id, relayed)

    assert relayed.status == 200
    assert relayed.headers["content-type"].startswith("text/event-stream")
    assert bytes(relayed.body) == bytes(fake.requests[-1].response_body)
    assert relayed.body.count(b"data: ") == 4
    assert relayed.body_frames, "the pieces after the first follow as response_body"
    assert [f["seq"] for f in relayed.body_frames] == list(range(len(relayed.body_frames)))
    assert relayed.end == {"type": "response_end", "id": task_id, "chunks": len(relayed.body_frames)}


async def test_a_stream_whose_first_piece_is_slow_is_acknowledged_while_it_waits(start_agent, gateway):
    """The head waits for the first piece; the gateway still hears of the task within the protocol's second."""
    sent_head = asyncio.Event()
    release = asyncio.Event()
    event = b'data: {"candidates": []}\r\n\r\n'

    async def headers_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        sent_head.set()
        await release.wait()
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(headers_then_silence, "127.0.0.1", 0)
    try:
        port = upstream.sockets[0].getsockname()[1]
        await start_agent(upstream=f"http://127.0.0.1:{port}")
        link = await gateway.next_link()
        task_id = await send_task(link, generate_body("slow"), path=STREAM_PATH, query="alt=sse")

        await asyncio.wait_for(sent_head.wait(), 5)
        assert await link.next_for(task_id, within=1.0) == {"type": "ack", "id": task_id}
        release.set()
        relayed = await collect(link, task_id)
        assert relayed.status == 200
        assert bytes(relayed.body) == event
    finally:
        release.set()
        upstream.close()
        await upstream.wait_closed()


async def test_large_request_body_arrives_intact_and_every_frame_stays_under_1_mib(link, fake):
    text = "".join(random.choices(string.ascii_letters + " ", k=3 * 1024 * 1024))
    body = generate_body(text)
    task_id = await send_task(link, body)
    relayed = await collect(link, task_id)

    assert fake.requests[-1].body == body
    assert relayed.status == 200
    assert bytes(relayed.body) == bytes(fake.requests[-1].response_body)
    assert len(relayed.body) > 3 * 1024 * 1024
    assert all(len(data_of(f)) <= protocol.BODY_CHUNK_BYTES for f in relayed.body_frames)
    assert link.largest_frame < DAPHNE_MAX_MESSAGE


async def test_decoded_body_is_relayed_without_content_encoding_or_length(link, fake):
    # The fake gzips answers over 1 KiB when the caller accepts gzip; aiohttp undoes it.
    task_id = await send_task(link, generate_body("z" * 4096))
    relayed = await collect(link, task_id)

    assert json.loads(relayed.body)["candidates"][0]["content"]["parts"][0]["text"] == "echo: " + "z" * 4096
    assert "content-encoding" not in relayed.headers
    assert "content-length" not in relayed.headers


async def test_cancel_closes_the_upstream_stream_within_a_second_and_frees_the_slot(start_agent, gateway, fake):
    await start_agent(concurrency=1)
    link = await gateway.next_link()
    task_id = await send_task(link, generate_body("cancel me #hold"), path=STREAM_PATH, query="alt=sse")
    while "data" not in await link.next_for(task_id):  # the stream's first piece
        pass

    await link.send({"type": "cancel", "id": task_id})
    await asyncio.wait_for(fake.stream_aborted.wait(), timeout=1)

    await link.send({"type": "ping", "nonce": "after-cancel"})
    assert (await link.next_control())["type"] == "pong"
    assert link.by_id[task_id].empty(), "nothing more is sent for a cancelled task"
    follow_up = await send_task(link, generate_body("next"))
    assert (await collect(link, follow_up)).status == 200


async def test_unreachable_upstream_gives_an_upstream_unreachable_error(start_agent, gateway):
    await start_agent(upstream=f"http://127.0.0.1:{closed_port()}")
    link = await gateway.next_link()
    task_id = await send_task(link, generate_body("anyone there?"))
    relayed = await collect(link, task_id)

    assert relayed.status is None
    assert relayed.error["code"] == "upstream_unreachable"


async def test_upstream_failing_mid_body_ends_the_attempt_with_an_error(link):
    task_id = await send_task(link, generate_body("break #midstream-drop"), path=STREAM_PATH, query="alt=sse")
    relayed = await collect(link, task_id)

    assert relayed.status == 200
    assert relayed.body.startswith(b"data: ")
    assert relayed.end is None
    assert relayed.error["code"] == "upstream_unreachable"


async def test_upstream_error_status_is_relayed_as_an_ordinary_response(link):
    task_id = await send_task(link, generate_body("slow down #error=429"))
    relayed = await collect(link, task_id)

    assert relayed.error is None
    assert relayed.status == 429
    assert json.loads(relayed.body)["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_agent_never_runs_more_than_max_concurrency_tasks(start_agent, gateway, fake):
    await start_agent(concurrency=2)
    link = await gateway.next_link()
    task_ids = [
        await send_task(link, generate_body(f"hold {n} #hold"), path=STREAM_PATH, query="alt=sse") for n in range(5)
    ]
    first_frames = [await link.next_for(task_id) for task_id in task_ids]
    assert [frame["type"] for frame in first_frames[:2]] == ["response_start"] * 2
    assert [frame["type"] for frame in first_frames[2:]] == ["ack"] * 3, "waiting tasks are acknowledged"
    await asyncio.wait_for(fake.stream_held.wait(), timeout=5)

    started = [Relayed(status=frame.get("status")) for frame in first_frames]
    done = [
        asyncio.create_task(collect(link, task_id, relayed)) for task_id, relayed in zip(task_ids, started, strict=True)
    ]
    while not all(task.done() for task in done):
        fake.release()
        await asyncio.wait(done, timeout=0.05)

    assert [task.result().status for task in done] == [200] * 5
    assert fake.peak_in_flight == 2


async def test_agent_reconnects_with_the_same_executor_id_after_the_gateway_closes(start_agent, gateway):
    agent = await start_agent()
    first = await gateway.next_link()
    await first.ws.close()
    second = await gateway.next_link()

    assert second.hello["executor_id"] == first.hello["executor_id"] == agent.executor_id
    await second.send({"type": "ping", "nonce": "again"})
    assert (await second.next_control())["nonce"] == "again"


async def test_silent_gateway_connection_is_treated_as_dead_and_replaced(start_agent, gateway):
    gateway.heartbeat_interval, gateway.heartbeat_timeout = 0.2, 0.2
    await start_agent()
    first = await gateway.next_link()

    second = await gateway.next_link(within=3)

    assert first.closed.is_set()
    assert second.hello["executor_id"] == first.hello["executor_id"]


async def test_a_gateway_that_keeps_talking_keeps_its_connection_past_the_silence_limit(start_agent, gateway):
    gateway.heartbeat_interval, gateway.heartbeat_timeout = 0.2, 0.2  # silent for 0.4 s: dead
    await start_agent()
    link = await gateway.next_link()

    for beat in range(15):  # 1.5 s, a frame every 0.1 s
        await link.send({"type": "ping", "nonce": str(beat)})
        assert (await link.next_control())["nonce"] == str(beat)
        await asyncio.sleep(0.1)

    assert not link.closed.is_set()
    assert gateway.links.empty(), "the agent reconnected"


async def test_refused_token_is_retried_with_backoff(start_agent, gateway):
    await start_agent(token="gpe_wrong")

    first = await asyncio.wait_for(gateway.refused.get(), timeout=3)
    second = await asyncio.wait_for(gateway.refused.get(), timeout=3)

    assert first == second == "Bearer gpe_wrong"
    assert gateway.links.empty()


async def test_client_headers_reach_upstream_but_the_key_is_the_agents_own(link, fake):
    client_headers = {
        "content-type": "application/json",
        "x-goog-api-client": "google-genai-sdk/9.9.9 gl-python/3.11",
        "user-agent": "test-client/1.0",
        "x-goog-api-key": "must-not-reach-upstream",
    }
    task_id = await send_task(link, generate_body("headers"), path=STREAM_PATH, query="alt=sse", headers=client_headers)
    await collect(link, task_id)

    seen = fake.requests[-1]
    assert seen.query == "alt=sse"
    assert seen.headers["x-goog-api-client"] == client_headers["x-goog-api-client"]
    assert seen.headers["user-agent"] == "test-client/1.0"
    assert seen.api_key == AGENT_KEY
    assert "authorization" not in seen.headers and "cookie" not in seen.headers


async def test_frames_about_unknown_ids_are_dropped_silently(link):
    await link.send({"type": "request_body", "id": "nobody", "seq": 0, "data": "AAAA"})
    await link.send({"type": "cancel", "id": "nobody"})
    await link.send({"type": "something_new", "id": "nobody"})
    await link.send({"type": "ping", "nonce": "still-here"})

    assert (await link.next_control())["nonce"] == "still-here"
    assert link.by_id["nobody"].empty()
    assert not link.closed.is_set()


async def test_frames_that_are_not_json_objects_are_ignored(link):
    await link.ws.send_str("not json")
    await link.ws.send_str('["a list"]')
    await link.send({"type": "cancel", "id": ["not", "a", "string"]})
    await link.send({"type": "ping", "nonce": "survived"})

    assert (await link.next_control())["nonce"] == "survived"
    assert not link.closed.is_set()


async def test_body_piece_out_of_order_fails_the_task_as_bad_task(link):
    request = {"type": "request", "id": "t1", "method": "POST", "path": GENERATE_PATH, "query": "", "headers": {}}
    await link.send({**request, "body_chunks": 2})
    await link.send({"type": "request_body", "id": "t1", "seq": 1, "data": "AAAA"})

    error = await link.next_for("t1")
    assert (error["type"], error["code"]) == ("error", "bad_task")


async def test_each_task_logs_one_debug_line_without_query_token_or_keys(link, caplog):
    caplog.set_level(logging.DEBUG, logger="gemproxy.agent")
    task_id = await send_task(
        link, generate_body("log me"), path=STREAM_PATH, query="alt=sse&pageToken=query-secret",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    await collect(link, task_id)
    await asyncio.sleep(0)  # the runner logs in its finally, after response_end

    task_lines = [r for r in caplog.records if STREAM_PATH in r.getMessage()]
    assert len(task_lines) == 1
    assert task_lines[0].getMessage().startswith(f"POST {STREAM_PATH} 200 ")
    assert task_lines[0].levelno == logging.DEBUG
    assert not any(secret in caplog.text for secret in (TOKEN, AGENT_KEY, "query-secret"))


async def test_a_successful_call_costs_no_info_line_but_is_counted_in_the_summary(start_agent, gateway, caplog):
    caplog.set_level(logging.INFO, logger="gemproxy.agent")
    agent = await start_agent()
    link = await gateway.next_link()
    for _ in range(2):
        await collect(link, await send_task(link, generate_body("count me")))
    await collect(link, await send_task(link, generate_body("missing"), path="/v1beta/models/nope:frobnicate"))
    await asyncio.sleep(0)

    agent.log_summary()

    assert not [r for r in caplog.records if GENERATE_PATH in r.getMessage()], "a 2xx call has no INFO line"
    assert [r.levelno for r in caplog.records if "nope" in r.getMessage()] == [logging.INFO]
    assert caplog.records[-1].getMessage() == "3 calls in the last 60s: 200 x2, 404 x1"
    agent.log_summary()
    assert caplog.records[-1].getMessage() == "3 calls in the last 60s: 200 x2, 404 x1", "nothing new, no line"


async def test_agent_process_reads_its_environment_and_exits_cleanly_on_sigterm(gateway, fake):
    env = {
        **os.environ,
        "GEMPROXY_SERVER": gateway.url,
        "GEMPROXY_EXECUTOR_TOKEN": TOKEN,
        "GEMINI_API_KEY": AGENT_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "executors.agent", "--upstream", fake.url, "--concurrency", "2",
        cwd=REPO_ROOT, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        link = await gateway.next_link(within=10)
        assert link.hello["max_concurrency"] == 2
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    logs = (await process.stderr.read()).decode()

    assert process.returncode == 0, logs
    assert TOKEN not in logs and AGENT_KEY not in logs


async def test_agent_module_does_not_import_django():
    check = "import sys, executors.agent; sys.exit(1 if 'django' in sys.modules else 0)"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", check, cwd=REPO_ROOT)

    assert await process.wait() == 0


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("http://gw.example:8000", "ws://gw.example:8000/ws/executor"),
        ("https://gw.example/", "wss://gw.example/ws/executor"),
        ("https://gw.example/proxy", "wss://gw.example/proxy/ws/executor"),
        ("wss://gw.example/ws/executor", "wss://gw.example/ws/executor"),
    ],
)
def test_server_url_becomes_the_executor_websocket_url(server, expected):
    assert executor_url(server) == expected


def test_backoff_is_full_jitter_capped_at_thirty_seconds():
    assert all(0 <= backoff_delay(0) <= 0.5 for _ in range(100))
    assert all(0 <= backoff_delay(3) <= 4 for _ in range(100))
    assert max(backoff_delay(50) for _ in range(200)) <= 30
    assert max(backoff_delay(50) for _ in range(200)) > 4


async def test_a_small_unary_answer_travels_whole_in_one_frame(link, fake):
    task_id = await send_task(link, generate_body("short answer"))

    frame = await link.next_for(task_id)

    assert (frame["type"], frame["status"], frame["end"]) == ("response_start", 200, True)
    assert data_of(frame) == bytes(fake.requests[-1].response_body)


async def test_bodies_travel_as_binary_frames_exactly_when_the_welcome_agreed_to_them(link, gateway, fake):
    body = generate_body("binary or not")
    task_id = await send_task(link, body + b" " * (2 * protocol.BODY_CHUNK_BYTES))
    relayed = await collect(link, task_id)

    assert fake.requests[-1].body == body + b" " * (2 * protocol.BODY_CHUNK_BYTES)
    assert bytes(relayed.body) == bytes(fake.requests[-1].response_body)
    assert (link.binary_received > 0) is gateway.binary_frames


@pytest.mark.parametrize("gateway", [True], ids=["binary frames"], indirect=True)
async def test_a_binary_request_carrying_its_whole_body_is_served_as_one_frame(link, fake):
    body = generate_body("inline")
    task_id = uuid.uuid4().hex
    request = {"type": "request", "id": task_id, "method": "POST", "path": GENERATE_PATH, "query": "", "headers": {}}
    await link.send_body_piece({**request, "body_chunks": 1, "data": body})

    relayed = await collect(link, task_id)

    assert relayed.status == 200
    assert fake.requests[-1].body == body


@pytest.mark.parametrize("gateway", [True], ids=["binary frames"], indirect=True)
async def test_a_binary_request_whose_body_chunks_do_not_count_its_piece_is_refused(link, fake):
    task_id = uuid.uuid4().hex
    request = {"type": "request", "id": task_id, "method": "POST", "path": GENERATE_PATH, "query": "", "headers": {}}
    await link.send_body_piece({**request, "body_chunks": 0, "data": b"{}"})

    relayed = await collect(link, task_id)

    assert relayed.error is not None and relayed.error["code"] == "bad_task"
    assert fake.requests == []


@pytest.mark.parametrize("gateway", [True], ids=["binary frames"], indirect=True)
async def test_a_binary_request_whose_inline_piece_is_too_large_is_refused(link, fake):
    task_id = uuid.uuid4().hex
    request = {"type": "request", "id": task_id, "method": "POST", "path": GENERATE_PATH, "query": "", "headers": {}}
    await link.send_body_piece({**request, "body_chunks": 1, "data": b"x" * (protocol.BODY_CHUNK_BYTES + 1)})

    relayed = await collect(link, task_id)

    assert relayed.error is not None and relayed.error["code"] == "bad_task"
    assert fake.requests == []


LOG_LEVELS = {"": logging.INFO, "debug": logging.DEBUG, "WARNING": logging.WARNING, "bogus": logging.INFO}


@pytest.mark.parametrize(("value", "level"), LOG_LEVELS.items())
def test_the_log_level_comes_from_log_level_like_the_gateways(monkeypatch, value, level):
    monkeypatch.setenv("LOG_LEVEL", value)

    assert log_level() == level
