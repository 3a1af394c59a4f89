"""Whatever the gateway side sends, the headless agent keeps its connection and goes on serving.

A malformed task frame that names a task is answered with `bad_task` for that id; a frame that names
none is ignored with one log line. No frame ends the connection loop or logs a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from executors import protocol, task_checks
from executors.task_checks import MAX_BODY_CHUNKS
from tests import agent_harness
from tests.agent_harness import GENERATE_PATH, collect, generate_body, send_task

# The harness's fixtures, taken by assignment so that pytest finds them here.
fake = agent_harness.fake
gateway = agent_harness.gateway
start_agent = agent_harness.start_agent
link = agent_harness.link

GOOD_REQUEST = {
    "type": "request",
    "method": "POST",
    "path": GENERATE_PATH,
    "query": "",
    "headers": {"content-type": "application/json"},
    "body_chunks": 0,
}


@pytest.fixture(autouse=True)
def agent_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gemproxy.agent")
    return caplog


async def assert_still_serving(link, gateway, fake, agent_log) -> None:
    """Same connection, still answering pings and performing tasks, and nothing logged a traceback."""
    await link.send({"type": "ping", "nonce": "still-here"})
    assert await link.next_control() == {"type": "pong", "nonce": "still-here"}
    relayed = await collect(link, await send_task(link, generate_body("after the hostile frame")))
    assert relayed.status == 200
    assert not link.closed.is_set()
    assert gateway.links.empty(), "the agent did not reconnect"
    assert not [record for record in agent_log.records if record.exc_info], "no traceback"


async def bad_task_for(link, task_id: str) -> dict:
    frame = await link.next_for(task_id)
    assert (frame["type"], frame["code"]) == ("error", "bad_task"), frame
    return frame


MALFORMED_REQUESTS = {
    "no method": {"method": None},
    "method not a string": {"method": 7},
    "unknown method": {"method": "BREW"},
    "non-ASCII method": {"method": "G\u00c9T"},
    "no path": {"path": None},
    "path not a string": {"path": ["/v1beta/models"]},
    "query not a string": {"query": {"alt": "sse"}},
    "headers not an object": {"headers": "content-type: application/json"},
    "header value not a string": {"headers": {"content-type": 1}},
    "header value with CR LF": {"headers": {"x-goog-api-client": "a\r\nx-forged: 1"}},
    "header value with NUL": {"headers": {"x-goog-api-client": "a\x00b"}},
    "header name not a token": {"headers": {"bad name": "x"}},
    "no body_chunks": {"body_chunks": None},
    "body_chunks a string": {"body_chunks": "1"},
    "body_chunks a boolean": {"body_chunks": True},
    "body_chunks a float": {"body_chunks": 1.5},
    "body_chunks negative": {"body_chunks": -1},
    "body_chunks huge": {"body_chunks": 10**12},
    "body_chunks over the limit": {"body_chunks": MAX_BODY_CHUNKS + 1},
}


@pytest.mark.parametrize("change", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
async def test_a_malformed_request_frame_is_answered_bad_task_for_its_id(link, gateway, fake, agent_log, change):
    task_id = uuid.uuid4().hex
    frame = {**GOOD_REQUEST, "id": task_id, **change}
    await link.send({name: value for name, value in frame.items() if value is not None})

    await bad_task_for(link, task_id)
    assert fake.requests == []
    await assert_still_serving(link, gateway, fake, agent_log)


UNUSABLE_IDS = {
    "missing": None,
    "a number": 17,
    "a list": ["x"],
    "an object": {"a": 1},
    "empty": "",
    "10,000 characters": "x" * 10_000,
    "with CR LF": "a\r\nb",
}


@pytest.mark.parametrize("task_id", UNUSABLE_IDS.values(), ids=UNUSABLE_IDS.keys())
@pytest.mark.parametrize("kind", ["request", "request_body", "cancel"])
async def test_a_task_frame_without_a_usable_id_is_ignored_with_one_log_line(
    link, gateway, fake, agent_log, kind, task_id
):
    frame = {**GOOD_REQUEST, "type": kind, "seq": 0, "data": ""}
    if task_id is not None:
        frame["id"] = task_id
    await link.send(frame)
    await link.send({"type": "ping", "nonce": "after"})
    await link.next_control()

    lines = [record for record in agent_log.records if "without a valid task id" in record.getMessage()]
    assert len(lines) == 1
    assert fake.requests == []
    assert all(queue.empty() for queue in link.by_id.values())
    await assert_still_serving(link, gateway, fake, agent_log)


BAD_PIECES = {
    "not base64": {"data": "!!!!"},
    "missing padding": {"data": "AAA"},
    "embedded space": {"data": "AA AA==="},
    "trailing newline": {"data": "AAAA\n"},
    "padding in the middle": {"data": "AA==AAAA"},
    "url-safe alphabet": {"data": "-_-_"},
    "data missing": {"data": None},
    "data not a string": {"data": 1234},
    "seq a string": {"seq": "0"},
    "seq a boolean": {"seq": False},
    "seq missing": {"seq": None},
    "seq out of order": {"seq": 1},
}


@pytest.mark.parametrize("change", BAD_PIECES.values(), ids=BAD_PIECES.keys())
async def test_a_bad_body_piece_fails_its_task_as_bad_task(link, gateway, fake, agent_log, change):
    task_id = uuid.uuid4().hex
    await link.send({**GOOD_REQUEST, "id": task_id, "body_chunks": 2})
    piece = {"type": "request_body", "id": task_id, "seq": 0, "data": protocol.encode_body(b"{}"), **change}
    await link.send({name: value for name, value in piece.items() if value is not None})

    await bad_task_for(link, task_id)
    await link.send({"type": "request_body", "id": task_id, "seq": 1, "data": "AAAA"})
    assert fake.requests == [], "the task never runs, even when the rest of its body arrives"
    await assert_still_serving(link, gateway, fake, agent_log)
    assert link.by_id[task_id].empty()


async def test_a_body_piece_for_an_unknown_task_is_ignored(link, gateway, fake, agent_log):
    await link.send({"type": "request_body", "id": "nobody", "seq": 0, "data": "!!not base64!!"})

    await assert_still_serving(link, gateway, fake, agent_log)
    assert link.by_id["nobody"].empty()


async def test_a_body_piece_after_the_body_is_complete_is_ignored(link, gateway, fake, agent_log):
    task_id = await send_task(link, generate_body("one piece"))
    await link.send({"type": "request_body", "id": task_id, "seq": 1, "data": "AAAA"})

    relayed = await collect(link, task_id)

    assert relayed.status == 200 and relayed.error is None
    assert fake.requests[-1].body == generate_body("one piece")
    await assert_still_serving(link, gateway, fake, agent_log)


async def test_json_nested_too_deep_to_parse_is_ignored(link, gateway, fake, agent_log):
    await link.ws.send_str("[" * 200_000 + "]" * 200_000)
    await link.ws.send_str('{"type": "request", "id": ' + "[" * 200_000 + "]" * 200_000 + "}")

    await assert_still_serving(link, gateway, fake, agent_log)


@pytest.mark.parametrize(
    "heartbeat", ["abc", None, [], {"s": 1}, -1, 0, True, 1e999], ids=repr
)  # fmt: skip
async def test_a_welcome_with_unusable_heartbeat_values_keeps_the_connection(link, gateway, fake, agent_log, heartbeat):
    welcome = {"type": "welcome", "protocol": 1, "account": ["not", "a", "label"]}
    await link.send({**welcome, "heartbeat_interval": heartbeat, "heartbeat_timeout": heartbeat})

    await assert_still_serving(link, gateway, fake, agent_log)


def binary(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(4, "big") + header + data


MALFORMED_BINARY = {
    "JSON sent as binary": b'{"type": "ping", "nonce": "binary"}',
    "shorter than its header length": b"\x00\x00",
    "a header length past the end": b"\x00\x00\x01\x00{}",
    "a header that is not JSON": binary(b"{{{"),
    "a header without a type": binary(b"{}", b"body"),
    "a header that holds data too": binary(b'{"type":"request_body","id":"t1","seq":0,"data":"AAAA"}', b"x"),
}


@pytest.mark.parametrize("message", MALFORMED_BINARY.values(), ids=MALFORMED_BINARY.keys())
async def test_a_malformed_binary_frame_is_ignored(link, gateway, fake, agent_log, message):
    await link.ws.send_bytes(message)

    await assert_still_serving(link, gateway, fake, agent_log)
    assert any("ignoring a frame" in record.getMessage() for record in agent_log.records)


async def test_a_flood_of_hostile_frames_costs_nothing_but_their_own_tasks(link, gateway, fake, agent_log):
    hostile = [{**GOOD_REQUEST, **change, "id": f"bad-{n}"} for n, change in enumerate(MALFORMED_REQUESTS.values())]
    for frame in hostile:
        await link.send({name: value for name, value in frame.items() if value is not None})
    answers = await asyncio.gather(*(bad_task_for(link, frame["id"]) for frame in hostile))

    assert len(answers) == len(MALFORMED_REQUESTS)
    await assert_still_serving(link, gateway, fake, agent_log)


async def test_a_frame_that_trips_a_bug_costs_its_task_but_not_the_connection(
    link, gateway, fake, agent_log, monkeypatch
):
    def broken(frame):
        raise RuntimeError("a bug in reading requests")

    monkeypatch.setattr(task_checks, "read_request", broken)
    task_id = uuid.uuid4().hex
    await link.send({**GOOD_REQUEST, "id": task_id})

    frame = await link.next_for(task_id)
    assert (frame["type"], frame["code"]) == ("error", "internal")
    bug_lines = [record for record in agent_log.records if "could not be handled" in record.getMessage()]
    assert len(bug_lines) == 1 and bug_lines[0].exc_info, "a bug, unlike a bad task, is logged with its traceback"
    monkeypatch.undo()
    agent_log.clear()
    await assert_still_serving(link, gateway, fake, agent_log)
