"""Limits and usage through a real gateway: Daphne, a headless executor, the fake upstream.

The concurrency slot comes back when the client disconnects mid-stream and
when the executor dies mid-stream; tokens are settled from the usageMetadata
of streams and non-streams; every call leaves a usage record, a stream cut
short with the tokens it used until then.
"""

from __future__ import annotations

import json
import sqlite3

import httpx2 as httpx
import pytest

from tests.e2e.harness import Deployment, Gateway, Process, ThreadedUpstream, wait_until

MODEL_PATH = "/v1beta/models/gemini-2.5-flash"
TOKENS_PER_DAY = 1_000_000


@pytest.fixture(scope="module")
def gateway(deployment: Deployment) -> Gateway:
    """A gateway of this module alone; each test brings the executors it needs."""
    return deployment.start_gateway()


@pytest.fixture
def agent(deployment: Deployment, gateway: Gateway, executor_token: str, upstream: ThreadedUpstream) -> Process:
    """A headless executor of this test alone, so a test may kill it."""
    process = deployment.start_agent(gateway, executor_token, upstream.url, name="agent")
    gateway.wait_for_executors(1)
    yield process
    process.stop()
    wait_until(lambda: gateway.health()["executors"] == 0, what="the agent to leave")


def issue_key(deployment: Deployment, user: str, *options: str) -> str:
    return deployment.manage("create_proxy_key", "--user", user, *options)


def body(text: str) -> bytes:
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()


def post(gateway: Gateway, key: str, method: str, text: str, **params) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{MODEL_PATH}:{method}",
        params=params,
        content=body(text),
        headers={"x-goog-api-key": key, "content-type": "application/json"},
        timeout=30,
    )


def held_stream(gateway: Gateway, key: str):
    """A stream whose upstream holds everything after the first chunk until released."""
    return httpx.stream(
        "POST",
        f"{gateway.url}{MODEL_PATH}:streamGenerateContent",
        params={"alt": "sse"},
        content=body("a long story #hold"),
        headers={"x-goog-api-key": key, "content-type": "application/json"},
        timeout=30,
    )


def usage_rows(deployment: Deployment, where: str, *args) -> list[sqlite3.Row]:
    with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute(f"SELECT * FROM accounts_usagerecord WHERE {where} ORDER BY id", args).fetchall()


def test_a_client_that_disconnects_mid_stream_gives_back_its_slot(deployment, gateway, agent, upstream):
    key = issue_key(deployment, "dora", "--concurrency", "1")
    with held_stream(gateway, key) as stream:
        chunks = stream.iter_bytes()  # kept: dropping the iterator would close the connection
        assert next(chunks).startswith(b"data: ")
        refused = post(gateway, key, "generateContent", "meanwhile")
        assert refused.status_code == 429
        assert "concurrent requests, limit 1" in refused.json()["error"]["message"]
        upstream.fake.stream_aborted.clear()
    upstream.wait_for("stream_aborted")
    upstream.release()
    wait_until(lambda: post(gateway, key, "generateContent", "after").status_code == 200, 10, "the slot to free")


def test_an_executor_that_dies_mid_stream_gives_back_the_slot(deployment, gateway, executor_token, upstream):
    key = issue_key(deployment, "eve", "--concurrency", "1")
    doomed = deployment.start_agent(gateway, executor_token, upstream.url, name="doomed-agent")
    gateway.wait_for_executors(1)
    with held_stream(gateway, key) as stream:
        chunks = stream.iter_bytes()
        next(chunks)
        doomed.kill()
        rest = b"".join(chunks)
    assert b'"error"' in rest
    upstream.release()
    replacement = deployment.start_agent(gateway, executor_token, upstream.url, name="replacement-agent")
    try:
        gateway.wait_for_executors(1)
        assert post(gateway, key, "generateContent", "after").status_code == 200
    finally:
        replacement.stop()
        wait_until(lambda: gateway.health()["executors"] == 0, what="the replacement to leave")
    wait_until(lambda: usage_rows(deployment, "outcome = 'executor_lost'"), 5, "the executor_lost record")


def test_tokens_are_settled_from_the_usage_metadata_of_streams_and_non_streams(deployment, gateway, agent):
    key = issue_key(deployment, "finn", "--tpd", str(TOKENS_PER_DAY))

    unary = post(gateway, key, "generateContent", "hello there #think")
    unary_usage = unary.json()["usageMetadata"]
    stream = post(gateway, key, "streamGenerateContent", "tell me more", alt="sse")
    last_event = [line for line in stream.text.split("\r\n") if line.startswith("data: ")][-1]
    stream_usage = json.loads(last_event.removeprefix("data: "))["usageMetadata"]
    probe_text = "how much is left"
    probe = post(gateway, key, "generateContent", probe_text)

    def used(metadata: dict) -> int:
        return (
            metadata["promptTokenCount"]
            + metadata.get("candidatesTokenCount", 0)
            + metadata.get("thoughtsTokenCount", 0)
        )

    assert unary_usage.get("thoughtsTokenCount", 0) > 0
    reserved_by_probe = len(body(probe_text)) // 4
    remaining = int(probe.headers["x-ratelimit-remaining-tokens-day"])
    assert remaining == TOKENS_PER_DAY - used(unary_usage) - used(stream_usage) - reserved_by_probe


def test_every_call_leaves_a_usage_record_with_its_outcome(deployment, gateway, agent, upstream):
    key = issue_key(deployment, "gus", "--rpm", "3")
    assert post(gateway, key, "generateContent", "fine").status_code == 200
    assert post(gateway, key, "generateContent", "boom #error=500").status_code == 500
    assert post(gateway, "gpk_wrong", "generateContent", "who am I").status_code == 400
    assert post(gateway, key, "generateContent", "third").status_code == 200
    assert post(gateway, key, "generateContent", "one too many").status_code == 429
    with httpx.stream(
        "POST",
        f"{gateway.url}{MODEL_PATH}:streamGenerateContent",
        params={"alt": "sse"},
        content=body("cut me short #hold"),
        headers={"x-goog-api-key": issue_key(deployment, "gus"), "content-type": "application/json"},
        timeout=30,
    ) as stream:
        chunks = stream.iter_bytes()
        next(chunks)
        upstream.fake.stream_aborted.clear()
    upstream.wait_for("stream_aborted")
    upstream.release()

    def outcomes() -> list[str]:
        rows = usage_rows(deployment, "user_id = (SELECT id FROM auth_user WHERE username = 'gus') OR key_id IS NULL")
        return [row["outcome"] for row in rows]

    expected = ["ok", "upstream_error", "rejected_auth", "ok", "rejected_quota", "client_cancelled"]
    wait_until(lambda: sorted(outcomes()) == sorted(expected), 10, f"records {expected}")
    [cancelled] = usage_rows(deployment, "outcome = 'client_cancelled' AND model = 'gemini-2.5-flash'")[-1:]
    assert cancelled["streamed"] and cancelled["prompt_tokens"] > 0 and cancelled["candidates_tokens"] > 0
