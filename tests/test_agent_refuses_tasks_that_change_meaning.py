"""The headless agent performs a task only when its path and query mean in the upstream URL what they say.

A path with '?', '#', '%', a dot segment or a control character, or a query that is not plain
`name=value&...` or that carries its own `key`, is refused with a `bad_task` error: nothing reaches
the upstream, the agent logs one line without a traceback, and it goes on serving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from executors.task_checks import path_problem, query_problem
from tests import agent_harness
from tests.agent_harness import GENERATE_PATH, collect, generate_body, send_task

# The harness's fixtures, taken by assignment so that pytest finds them here.
fake = agent_harness.fake
gateway = agent_harness.gateway
start_agent = agent_harness.start_agent
link = agent_harness.link

# The same cases drive the browser executor's tests (frontend/tests/taskChecks.test.ts).
CASES = json.loads((Path(__file__).parent / "task_check_cases.json").read_text())
REFUSED_PATHS: dict[str, str] = CASES["refused_paths"]
ACCEPTED_PATHS: list[str] = CASES["accepted_paths"]
REFUSED_QUERIES: dict[str, str] = CASES["refused_queries"]
ACCEPTED_QUERIES: list[str] = CASES["accepted_queries"]


@pytest.mark.parametrize("path", REFUSED_PATHS.values(), ids=REFUSED_PATHS.keys())
def test_a_path_that_would_change_meaning_is_refused(path):
    assert path_problem(path) is not None


@pytest.mark.parametrize("path", ACCEPTED_PATHS)
def test_a_path_of_the_gemini_api_shape_is_accepted(path):
    assert path_problem(path) is None


@pytest.mark.parametrize("query", REFUSED_QUERIES.values(), ids=REFUSED_QUERIES.keys())
def test_a_query_that_would_change_meaning_or_carries_a_key_is_refused(query):
    assert query_problem(query) is not None


@pytest.mark.parametrize("query", ACCEPTED_QUERIES)
def test_a_well_formed_query_is_accepted(query):
    assert query_problem(query) is None


def test_the_refusal_names_the_problem_without_echoing_the_key():
    assert query_problem("alt=sse&k%65y=client-key") == "query carries 'key': the executor adds its own credentials"
    assert path_problem("/v1beta/models/a\x00b") == "path has a character that is not allowed: U+0000"
    assert path_problem("/v1beta/models/a?b") == "path has a character that is not allowed: '?'"


async def refused(link, caplog, **task) -> dict:
    """Sends a task that must be refused; returns its error frame after checking the log and the link."""
    caplog.set_level(logging.INFO, logger="gemproxy.agent")
    task_id = await send_task(link, generate_body("should not run"), **task)
    relayed = await collect(link, task_id)
    assert relayed.status is None
    assert relayed.error["code"] == "bad_task"
    lines = [record for record in caplog.records if task_id in record.getMessage()]
    assert len(lines) == 1, [record.getMessage() for record in lines]
    assert lines[0].exc_info is None, "a refused task is not a bug: no traceback"
    assert not any(record.exc_info for record in caplog.records)
    return relayed.error


@pytest.mark.parametrize(
    "path",
    [
        REFUSED_PATHS[name]
        for name in ("NUL (decoded %00)", "non-ASCII (decoded %C3%BC)", "question mark (decoded %3F)")
    ],
    ids=["NUL", "non-ASCII", "question mark"],
)
async def test_agent_answers_bad_task_for_a_refused_path_and_calls_no_upstream(link, fake, caplog, path):
    error = await refused(link, caplog, path=path)

    assert error["message"].startswith("path ")
    assert fake.requests == []


async def test_agent_answers_bad_task_for_a_query_carrying_a_key_and_calls_no_upstream(link, fake, caplog):
    error = await refused(link, caplog, query="alt=sse&%6Bey=client-key")

    assert "client-key" not in error["message"] and "client-key" not in caplog.text
    assert fake.requests == []


async def test_agent_keeps_serving_after_refusing_tasks(link, fake, caplog):
    for path in REFUSED_PATHS.values():
        await refused(link, caplog, path=path)

    relayed = await collect(link, await send_task(link, generate_body("still serving")))
    assert relayed.status == 200
    assert len(fake.requests) == 1


class RawRecorder:
    """An upstream that records the request target exactly as it came over the wire."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        self.targets.append(request.raw_path)
        return web.json_response({"ok": True})


@pytest.fixture
async def recorder() -> AsyncIterator[RawRecorder]:
    stand_in = RawRecorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield stand_in
    await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse"),
        ("/v1beta/files/a.b~c_d-e", "pageToken=Cg%3d%3D&q=a+b%2Fc&sep=%26%3D&t=x=y&u=:@/?"),
        ("/upload/v1beta/files", "upload_id=AbC-123_~.&upload_protocol=resumable"),
    ],
)
async def test_agent_sends_the_checked_path_and_query_to_upstream_byte_for_byte(
    start_agent, gateway, recorder, path, query
):
    await start_agent(upstream=recorder.url)
    link = await gateway.next_link()

    relayed = await collect(link, await send_task(link, b"{}", path=path, query=query))

    assert relayed.status == 200
    assert recorder.targets == [f"{path}?{query}"]


async def test_agent_relays_a_path_with_a_base_path_upstream_unchanged(start_agent, gateway, recorder):
    await start_agent(upstream=recorder.url + "/gemini/")
    link = await gateway.next_link()

    await collect(link, await send_task(link, b"{}", path=GENERATE_PATH, query="alt=sse"))

    assert recorder.targets == [f"/gemini{GENERATE_PATH}?alt=sse"]
