"""The official ``openai`` Python SDK works through the gateway's OpenAI surface: real Daphne, a real headless
executor, the fake upstream standing in for Google."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

ALIASES = "gpt-4o=gemini-2.5-flash,text-embedding-3-small=gemini-embedding-001"
# A 1x1 PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("openai")), {"GEMPROXY_MODEL_ALIASES": ALIASES})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


@pytest.fixture(scope="module")
def proxy_key(deployment: Deployment) -> str:
    return deployment.proxy_key("alice")


@pytest.fixture(scope="module")
def client(gateway: Gateway, proxy_key: str) -> openai.OpenAI:
    # As a member configures any OpenAI client: Google's documented base URL, the proxy key. No retries,
    # so that a 429 reaches the test.
    return openai.OpenAI(base_url=f"{gateway.url}/v1beta/openai/", api_key=proxy_key, max_retries=0)


def upstream_body(upstream: ThreadedUpstream, marker: str) -> dict:
    request = next(r for r in reversed(upstream.requests) if marker.encode() in r.body)
    return json.loads(request.body)


def usage_rows(deployment: Deployment, where: str, expected: int = 1) -> list[sqlite3.Row]:
    """The usage records matching ``where``, once the writer (every second) has written ``expected`` of them."""
    rows: list[sqlite3.Row] = []

    def written() -> bool:
        nonlocal rows
        with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM accounts_usagerecord WHERE {where} ORDER BY id").fetchall()
        return len(rows) >= expected

    wait_until(written, 15, f"usage records where {where}")
    return rows


def test_a_chat_completion_by_alias_answers_with_usage_and_is_recorded_under_both_names(client, deployment):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "record me please"},
        ],
    )
    assert completion.model == "gpt-4o"
    assert completion.choices[0].message.content.startswith("echo: record me please")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    (row,) = usage_rows(deployment, "method = 'openai.chat/generateContent' AND requested_model = 'gpt-4o'")
    assert (row["model"], row["outcome"], row["status_code"]) == ("gemini-2.5-flash", "ok", 200)
    assert row["prompt_tokens"] == completion.usage.prompt_tokens


def test_a_stream_arrives_in_chunks_with_usage_at_the_end(client, upstream):
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream me #chunks=3"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.startswith("echo: stream me")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3


def test_usage_is_recorded_when_the_client_leaves_mid_stream(client, deployment, upstream):
    stream = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "leave early #hold #chunks=3"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    upstream.release()
    (row,) = usage_rows(deployment, "method = 'openai.chat/streamGenerateContent' AND outcome = 'client_cancelled'")
    assert row["prompt_tokens"] > 0 and row["requested_model"] == "gemini-2.5-flash"


def test_a_tool_round_trip_reaches_the_upstream_as_function_call_and_response(client, upstream):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="gpt-4o",
        tools=tools,
        tool_choice="auto",
        messages=[
            {"role": "user", "content": "weather round trip"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 18}'},
        ],
    )
    assert completion.choices[0].message.content.startswith("echo: weather round trip")
    sent = upstream_body(upstream, "weather round trip")
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert sent["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "skip_thought_signature_validator",
                }
            ],
        },
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"celsius": 18}}}]},
    ]


def test_images_as_data_urls_and_https_urls(client):
    data_url = "data:image/png;base64," + base64.b64encode(PIXEL).decode()
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe these"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    content = completion.choices[0].message.content
    assert f"[inline image/png {len(PIXEL)} bytes sha256={hashlib.sha256(PIXEL).hexdigest()}]" in content
    assert "[file https://example.com/cat.png]" in content


def test_a_json_schema_response_format_reaches_the_upstream(client, upstream):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "json schema please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
        reasoning_effort="low",
        max_completion_tokens=200,
        extra_body={
            "extra_body": {
                "google": {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
            }
        },
    )
    sent = upstream_body(upstream, "json schema please")
    assert sent["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema
    assert config["thinkingConfig"] == {"thinkingBudget": 1024} and config["maxOutputTokens"] == 200


def test_a_bad_key_is_an_authentication_error(gateway):
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1beta/openai/", api_key="not-a-gemproxy-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 401


def test_an_upstream_429_is_a_rate_limit_error_with_retry_after(client):
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="gemini-2.0-flash", messages=[{"role": "user", "content": "too much #error=429 #retry-delay=7"}]
        )
    assert refused.value.response.headers["retry-after"] in ("7", "8")


def test_an_unknown_model_is_not_found_and_says_what_is_offered(client):
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert "gpt-4o" in str(refused.value)


def test_models_are_listed_and_got(client):
    ids = [model.id for model in client.models.list()]
    assert "gemini-2.5-flash" in ids and "gpt-4o" in ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gemini-9-nonexistent")


def test_embeddings_in_the_sdks_default_base64_encoding(client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"], dimensions=8)
    assert [len(item.embedding) for item in result.data] == [8, 8]
    assert result.model == "text-embedding-3-small"
