"""The official ``anthropic`` Python SDK works through the gateway's Anthropic surface: real Daphne, a real
headless executor, the fake upstream standing in for Google.

Needs the Anthropic routes in ``gateway.compat.urls`` (``anthropic_routes.urlpatterns_for``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

ALIASES = "claude-sonnet-4-5=gemini-2.5-flash,claude-haiku-4-5=gemini-2.5-flash-lite"
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("anthropic")), {"GEMPROXY_MODEL_ALIASES": ALIASES})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


@pytest.fixture(scope="module")
def client(gateway: Gateway, deployment: Deployment) -> anthropic.Anthropic:
    # As Claude Code takes it: ANTHROPIC_BASE_URL is the gateway's root, the key a proxy key.
    # No retries, so that a 429 reaches the test.
    return anthropic.Anthropic(base_url=gateway.url, api_key=deployment.proxy_key("alice"), max_retries=0)


def upstream_body(upstream: ThreadedUpstream, marker: str) -> dict:
    request = next(r for r in reversed(upstream.requests) if marker.encode() in r.body)
    return json.loads(request.body)


def usage_rows(deployment: Deployment, where: str) -> list[sqlite3.Row]:
    rows: list[sqlite3.Row] = []

    def written() -> bool:
        nonlocal rows
        with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM accounts_usagerecord WHERE {where} ORDER BY id").fetchall()
        return bool(rows)

    wait_until(written, 15, f"usage records where {where}")
    return rows


def test_a_message_by_alias_answers_with_usage_and_is_recorded_under_both_names(client, deployment, upstream):
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        system="You are terse.",
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "record this message"},
        ],
    )
    assert message.content[0].text == "echo: record this message"
    assert message.stop_reason == "end_turn" and message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = upstream_body(upstream, "record this message")
    assert sent["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    (row,) = usage_rows(deployment, "method = 'anthropic.messages/generateContent'")
    assert (row["model"], row["requested_model"]) == ("gemini-2.5-flash", "claude-sonnet-4-5")


def test_a_stream_with_thinking_accumulates_into_thinking_and_text_blocks(client, deployment):
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=500,
        thinking={"type": "enabled", "budget_tokens": 256},
        messages=[{"role": "user", "content": "stream and think #think #chunks=4"}],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking.startswith("Thinking about: stream and think")
    assert final.content[1].text == "echo: stream and think #think #chunks=4"
    assert final.usage.output_tokens > 0
    usage_rows(deployment, "method = 'anthropic.messages/streamGenerateContent'")


def test_a_signature_the_client_sends_back_reaches_gemini_and_returns(client, upstream):
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "before"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "", "signature": "U0lHLUFC"},
                    {"type": "text", "text": "earlier answer"},
                ],
            },
            {"role": "user", "content": "signed follow-up"},
        ],
    )
    sent = upstream_body(upstream, "signed follow-up")
    assert sent["contents"][1]["parts"] == [{"text": "earlier answer", "thoughtSignature": "U0lHLUFC"}]
    signatures = [block.signature for block in message.content if block.type == "thinking"]
    assert signatures == ["U0lHLUFC"]


def test_a_base64_image_reaches_gemini_as_inline_data(client):
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(PIXEL).decode(),
                        },
                    },
                    {"type": "text", "text": "what is this"},
                ],
            }
        ],
    )
    digest = hashlib.sha256(PIXEL).hexdigest()
    assert f"[inline image/png {len(PIXEL)} bytes sha256={digest}]" in message.content[0].text


def test_tools_reach_gemini_as_function_declarations_with_the_chosen_mode(client, upstream):
    client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "tool result marker"}],
            },
        ],
    )
    sent = upstream_body(upstream, "tool result marker")
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert sent["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"content": "tool result marker"},
    }


def test_count_tokens_answers_input_tokens(client):
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "count me"}]
    )
    assert counted.input_tokens > 0


def test_models_are_listed_in_anthropics_shape_with_the_aliases(client):
    ids = [model.id for model in client.models.list()]
    assert "gemini-2.5-flash" in ids and "claude-sonnet-4-5" in ids


def test_a_bad_key_is_an_authentication_error(gateway):
    stranger = anthropic.Anthropic(base_url=gateway.url, api_key="gp-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        stranger.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert refused.value.body["type"] == "error"


def test_googles_429_is_a_rate_limit_error_with_retry_after(client):
    # A model of its own: the 429 cools the account down for it, and the other tests go on.
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(
            model="gemini-2.5-pro", max_tokens=10, messages=[{"role": "user", "content": "#error=429"}]
        )
    assert refused.value.response.headers["retry-after"] == "8"
    assert refused.value.body["error"]["type"] == "rate_limit_error"


def test_a_failure_mid_stream_reaches_the_sdk_as_an_error_event(client):
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as failed:
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "#midstream-error"}]
        ) as stream:
            seen.extend(event.type for event in stream)
    assert failed.value.body["error"]["type"] == "api_error"
    assert "message_start" in seen or failed.value.response.status_code == 200
