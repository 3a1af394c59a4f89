"""The official ``openai`` Python SDK's Responses API works through the gateway: real Daphne, a real headless
executor, the fake upstream standing in for Google.

Needs the Responses routes in ``gateway.compat.urls`` (``responses_routes.urlpatterns_for``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until

ALIASES = "gpt-5=gemini-2.5-flash"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    install = Deployment(Path(tmp_path_factory.mktemp("responses")), {"GEMPROXY_MODEL_ALIASES": ALIASES})
    yield install
    install.stop()


@pytest.fixture(scope="module")
def gateway(deployment: Deployment, upstream: ThreadedUpstream) -> Gateway:
    gateway = deployment.start_gateway()
    deployment.start_agent(gateway, deployment.executor_token(), upstream.url, name="executor-1")
    gateway.wait_for_executors(1)
    return gateway


@pytest.fixture(scope="module", params=["v1beta/openai", "openai/v1"])
def client(request, gateway: Gateway, deployment: Deployment) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/{request.param}/", api_key=deployment.proxy_key("alice"), max_retries=0
    )


def upstream_body(upstream: ThreadedUpstream, marker: str) -> dict:
    request = next(r for r in reversed(upstream.requests) if marker.encode() in r.body)
    return json.loads(request.body)


def test_a_response_by_alias_answers_with_usage_and_is_recorded(client, deployment, upstream):
    response = client.responses.create(model="gpt-5", instructions="Be terse.", input="responses marker")
    assert response.output_text == "echo: responses marker"
    assert response.status == "completed" and response.usage.total_tokens > 0
    assert upstream_body(upstream, "responses marker")["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    rows: list = []

    def written() -> bool:
        nonlocal rows
        with sqlite3.connect(deployment.tmp / "gemproxy.sqlite3") as db:
            query = "SELECT model, requested_model FROM accounts_usagerecord WHERE method = ?"
            rows = db.execute(query, ("openai.responses/generateContent",)).fetchall()
        return bool(rows)

    wait_until(written, 15, "the usage record")
    assert rows[0] == ("gemini-2.5-flash", "gpt-5")


def test_a_stream_accumulates_into_the_response_with_reasoning(client):
    with client.responses.stream(
        model="gpt-5", input="stream me #think #chunks=4", reasoning={"effort": "low", "summary": "auto"}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in kinds and "response.output_text.delta" in kinds
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "echo: stream me #think #chunks=4"


def test_previous_response_id_continues_the_conversation(client, upstream):
    first = client.responses.create(model="gpt-5", input="first turn marker")
    second = client.responses.create(model="gpt-5", input="second turn marker", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = upstream_body(upstream, "second turn marker")["contents"]
    assert sent == [
        {"role": "user", "parts": [{"text": "first turn marker"}]},
        {"role": "model", "parts": [{"text": "echo: first turn marker"}]},
        {"role": "user", "parts": [{"text": "second turn marker"}]},
    ]


def test_function_calls_and_outputs_reach_gemini_paired_by_name(client, upstream):
    client.responses.create(
        model="gpt-5",
        tools=[{"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {}}}],
        input=[
            {"role": "user", "content": "list files"},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "function output marker"},
        ],
    )
    sent = upstream_body(upstream, "function output marker")
    assert sent["contents"][2]["parts"] == [
        {"functionResponse": {"name": "shell", "response": {"output": "function output marker"}}}
    ]


def test_googles_429_is_a_rate_limit_error(client):
    # A model of its own: the 429 cools the account down for it, and the other tests go on.
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model="gemini-2.0-flash", input="#error=429")
    # Google's own 429 asks for 8 s; the second base finds the account cooling down, the gateway's own 429.
    assert int(refused.value.response.headers["retry-after"]) > 0


def test_an_unknown_previous_response_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-5", input="x", previous_response_id="resp_unknown")
    assert refused.value.body["param"] == "previous_response_id"
