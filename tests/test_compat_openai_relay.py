"""The OpenAI surface through the gateway's real ASGI app, with a scripted executor side: what reaches the
upstream, what the client gets back, the errors in OpenAI's shape, and the usage record."""

from __future__ import annotations

import json

import pytest

from accounts import usage
from accounts.models import UsageRecord
from executors.dispatcher import CoolingDown, DispatchError, ResponseHead
from gateway.compat import aliases
from tests.api_doubles import asgi_call

pytest_plugins = ["tests.api_fixtures"]
pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "/v1beta/openai/chat/completions"
ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi there"}]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10},
    "responseId": "resp1",
}


@pytest.fixture(autouse=True)
def alias_gpt_4o(settings):
    settings.GEMPROXY_MODEL_ALIASES = {"gpt-4o": "gemini-2.5-flash"}
    aliases.forget_cached()
    yield
    aliases.forget_cached()


@pytest.fixture
async def bearer(amake_key) -> dict[str, str]:
    _, secret = await amake_key()
    return {"authorization": f"Bearer {secret}", "content-type": "application/json"}


def chat_body(**fields) -> bytes:
    return json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}], **fields}).encode()


def records() -> list[UsageRecord]:
    usage.flush()
    return list(UsageRecord.objects.order_by("pk"))


async def test_a_chat_completion_reaches_the_upstream_as_generate_content_on_the_resolved_model(exchanges, bearer):
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body(temperature=0.5))
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["model"] == "gpt-4o" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi there"}
    assert body["usage"]["total_tokens"] == 10
    (task,) = exchanges.tasks
    assert (task.method, task.path, task.query) == ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", "")
    assert json.loads(task.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "generationConfig": {"temperature": 0.5},
    }
    assert "authorization" not in {name.lower() for name in task.headers}


async def test_the_second_base_url_serves_the_same_surface(exchanges, bearer):
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    answer = await asgi_call("POST", "/openai/v1/chat/completions", headers=bearer, body=chat_body())
    assert answer.status == 200 and answer.json()["choices"][0]["message"]["content"] == "Hi there"


async def test_the_usage_record_keeps_both_model_names_and_the_tokens(exchanges, bearer):
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    await asgi_call("POST", CHAT, headers=bearer, body=chat_body())
    (record,) = await _records()
    assert (record.method, record.model, record.requested_model) == (
        "openai.chat/generateContent",
        "gemini-2.5-flash",
        "gpt-4o",
    )
    assert (record.prompt_tokens, record.candidates_tokens, record.outcome) == (7, 3, "ok")


async def test_a_stream_is_translated_event_by_event_and_ends_with_done(exchanges, bearer):
    first = {**ANSWER, "candidates": [{"content": {"parts": [{"text": "Hi "}]}, "index": 0}]}
    last = {**ANSWER, "candidates": [{"content": {"parts": [{"text": "there"}]}, "finishReason": "STOP", "index": 0}]}
    exchanges.head = ResponseHead(200, {"content-type": "text/event-stream"})
    # Cut mid-event on purpose: the relay must reassemble events before translating them.
    raw = b"data: " + json.dumps(first).encode() + b"\r\n\r\ndata: " + json.dumps(last).encode() + b"\r\n\r\n"
    exchanges.pieces = [raw[:25], raw[25:]]
    body = chat_body(stream=True, stream_options={"include_usage": True})
    answer = await asgi_call("POST", CHAT, headers=bearer, body=body)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = [event.removeprefix("data: ") for event in answer.body.decode().split("\n\n") if event]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hi there"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 10
    (task,) = exchanges.tasks
    assert (task.path, task.query) == ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    (record,) = await _records()
    assert (record.method, record.streamed, record.prompt_tokens) == ("openai.chat/streamGenerateContent", True, 7)


async def test_a_late_upstream_error_becomes_an_openai_error_event_without_done(exchanges, bearer):
    first = {**ANSWER, "candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}
    exchanges.head = ResponseHead(200, {"content-type": "text/event-stream"})
    exchanges.pieces = [
        b"data: " + json.dumps(first).encode() + b"\r\n\r\n",
        b'{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}\n',
    ]
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body(stream=True))
    events = [json.loads(e.removeprefix("data: ")) for e in answer.body.decode().split("\n\n") if e]
    assert events[-1] == {
        "error": {"message": "An internal error has occurred.", "type": "server_error", "param": None, "code": None}
    }
    (record,) = await _records()
    assert record.outcome == "upstream_error"


async def test_a_bad_key_is_401_in_openais_shape(exchanges):
    headers = {"authorization": "Bearer not-a-key", "content-type": "application/json"}
    answer = await asgi_call("POST", CHAT, headers=headers, body=chat_body())
    assert answer.status == 401
    assert answer.error["type"] == "invalid_request_error" and answer.error["code"] == "invalid_api_key"
    assert set(answer.error) == {"message", "type", "param", "code"}
    missing = await asgi_call("POST", CHAT, headers={"content-type": "application/json"}, body=chat_body())
    assert missing.status == 401
    assert exchanges.tasks == []


async def test_an_unknown_non_gemini_model_is_404_listing_what_is_offered(exchanges, bearer):
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body(model="gpt-5-ultra"))
    assert answer.status == 404
    assert answer.error["code"] == "model_not_found" and answer.error["param"] == "model"
    assert "gpt-4o" in answer.error["message"] and "gemini-2.5-flash" in answer.error["message"]
    assert exchanges.tasks == []


async def test_a_gemini_model_id_is_served_as_itself_with_or_without_models_prefix(exchanges, bearer):
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    await asgi_call("POST", CHAT, headers=bearer, body=chat_body(model="models/gemini-2.5-pro"))
    assert exchanges.tasks[0].path == "/v1beta/models/gemini-2.5-pro:generateContent"


async def test_the_keys_allowed_models_rule_applies_to_the_resolved_model(exchanges, amake_key):
    _, secret = await amake_key(allowed_models="gemini-2.5-pro")
    headers = {"authorization": f"Bearer {secret}"}
    refused = await asgi_call("POST", CHAT, headers=headers, body=chat_body(model="gpt-4o"))
    assert refused.status == 403 and refused.error["type"] == "permission_error"
    assert "gemini-2.5-flash" in refused.error["message"]
    assert exchanges.tasks == []


async def test_a_bad_request_is_400_naming_the_parameter_before_any_upstream_call(exchanges, bearer):
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body(temperature="hot"))
    assert answer.status == 400 and answer.error["param"] == "temperature"
    not_json = await asgi_call("POST", CHAT, headers=bearer, body=b"{not json")
    assert not_json.status == 400 and not_json.error["type"] == "invalid_request_error"
    assert exchanges.tasks == []


async def test_an_upstream_429_is_a_429_with_retry_after_from_its_retry_info(exchanges, bearer):
    exchanges.head = ResponseHead(429, {"content-type": "application/json"})
    exchanges.pieces = [
        json.dumps(
            {
                "error": {
                    "code": 429,
                    "message": "You exceeded your current quota. Please retry in 36.2s.",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}],
                }
            }
        ).encode()
    ]
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body())
    assert answer.status == 429 and answer.headers["retry-after"] == "36"
    assert answer.error["type"] == "rate_limit_error" and "36.2s" in answer.error["message"]


async def test_every_account_cooling_down_is_a_429_with_retry_after(monkeypatch, exchanges, bearer):
    async def cooling_down():
        raise CoolingDown("gemini-2.5-flash", 12.2)

    monkeypatch.setattr("tests.api_doubles._ScriptedExchange.start", lambda self: cooling_down())
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body())
    assert answer.status == 429 and answer.headers["retry-after"] == "13"
    assert answer.error["type"] == "rate_limit_error"


async def test_models_are_listed_with_the_aliases_and_one_is_got_by_its_alias(exchanges, bearer):
    exchanges.pieces = [
        json.dumps({"models": [{"name": "models/gemini-2.5-flash"}, {"name": "models/gemini-2.5-pro"}]}).encode()
    ]
    listed = await asgi_call("GET", "/v1beta/openai/models", headers=bearer)
    assert listed.status == 200
    assert [(m["id"], m["owned_by"]) for m in listed.json()["data"]] == [
        ("gemini-2.5-flash", "google"),
        ("gemini-2.5-pro", "google"),
        ("gpt-4o", "gemproxy"),
    ]
    assert (exchanges.tasks[0].method, exchanges.tasks[0].path) == ("GET", "/v1beta/models")
    exchanges.pieces = [json.dumps({"name": "models/gemini-2.5-flash"}).encode()]
    got = await asgi_call("GET", "/v1beta/openai/models/gpt-4o", headers=bearer)
    assert got.json() == {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "gemproxy"}
    assert exchanges.tasks[1].path == "/v1beta/models/gemini-2.5-flash"


async def test_embeddings_are_a_batch_on_the_resolved_model_and_come_back_in_base64_when_asked(
    exchanges, bearer, settings
):
    settings.GEMPROXY_MODEL_ALIASES = {"text-embedding-3-small": "gemini-embedding-001"}
    aliases.forget_cached()
    exchanges.pieces = [json.dumps({"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 0.0]}]}).encode()]
    body = json.dumps(
        {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 2, "encoding_format": "base64"}
    )
    answer = await asgi_call("POST", "/v1beta/openai/embeddings", headers=bearer, body=body.encode())
    assert answer.status == 200, answer.body
    data = answer.json()["data"]
    assert [d["embedding"] for d in data] == ["AAAAPwAAgL8=", "AACAPgAAAAA="]
    (task,) = exchanges.tasks
    assert task.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert json.loads(task.body)["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 2,
    }


async def test_unknown_paths_and_methods_answer_in_openais_shape(bearer):
    unknown = await asgi_call("POST", "/v1beta/openai/completions", headers=bearer, body=b"{}")
    assert unknown.status == 404 and set(unknown.error) == {"message", "type", "param", "code"}
    wrong_method = await asgi_call("GET", CHAT, headers=bearer)
    assert wrong_method.status == 405 and wrong_method.headers["allow"] == "POST"
    assert "type" in wrong_method.error


async def _records() -> list[UsageRecord]:
    from asgiref.sync import sync_to_async

    return await sync_to_async(records)()


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b"null",
        b"",
        b'{"model": "gpt-4o", "messages": ' + b"[" * 200 + b"]" * 200 + b"}",
        b'{"model": 5, "messages": []}',
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 7}]}]}',
        b'{"model": "gpt-4o\\u0000\\n", "messages": [{"role": "user", "content": "x"}]}',
        b'\xff\xfe{"model"',
    ],
    ids=[
        "array",
        "null",
        "empty",
        "too-deep",
        "model-not-a-string",
        "image-not-an-object",
        "control-chars",
        "not-utf8",
    ],
)
async def test_hostile_bodies_get_a_clear_4xx_in_openais_shape_and_never_reach_the_upstream(exchanges, bearer, body):
    answer = await asgi_call("POST", CHAT, headers=bearer, body=body)
    assert 400 <= answer.status < 500, answer.body
    assert set(answer.error) == {"message", "type", "param", "code"}
    assert exchanges.tasks == []


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(exchanges, bearer, settings):
    settings.GEMPROXY_MAX_BODY_BYTES = 1000
    answer = await asgi_call(
        "POST", CHAT, headers=bearer, body=chat_body(messages=[{"role": "user", "content": "x" * 2000}])
    )
    assert answer.status == 400 and "type" in answer.error
    assert exchanges.tasks == []


async def test_a_hostile_model_id_in_the_url_is_a_404_that_echoes_it_escaped(exchanges, bearer):
    answer = await asgi_call("GET", "/v1beta/openai/models/%0Aevil%2F..%2F..", headers=bearer)
    assert answer.status == 404 and "\n" not in answer.error["message"]
    assert exchanges.tasks == []


async def test_an_upstream_answer_that_is_not_json_is_a_502_not_a_500(exchanges, bearer):
    exchanges.pieces = [b"<html>proxy error</html>"]
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body())
    assert answer.status == 502 and answer.error["type"] == "server_error"


async def test_an_x_api_key_header_authenticates_as_anthropics_clients_send_it_and_is_not_forwarded(
    exchanges, amake_key
):
    _, secret = await amake_key()
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    answer = await asgi_call(
        "POST", CHAT, headers={"x-api-key": secret, "content-type": "application/json"}, body=chat_body()
    )
    assert answer.status == 200
    (task,) = exchanges.tasks
    assert secret not in repr(task.headers) + task.query


async def test_the_keys_own_rate_limit_is_a_429_with_retry_after_in_openais_shape(exchanges, amake_key):
    _, secret = await amake_key(rpm=1)
    headers = {"authorization": f"Bearer {secret}"}
    exchanges.pieces = [json.dumps(ANSWER).encode()]
    assert (await asgi_call("POST", CHAT, headers=headers, body=chat_body())).status == 200
    refused = await asgi_call("POST", CHAT, headers=headers, body=chat_body())
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.error["type"] == "rate_limit_error"
    assert len(exchanges.tasks) == 1


async def test_an_executor_lost_mid_stream_ends_it_with_an_openai_error_event_and_keeps_the_tokens(exchanges, bearer):
    first = {**ANSWER, "candidates": [{"content": {"parts": [{"text": "Hi"}]}, "index": 0}]}
    exchanges.head = ResponseHead(200, {"content-type": "text/event-stream"})
    exchanges.pieces = [
        b"data: " + json.dumps(first).encode() + b"\r\n\r\n",
        DispatchError(503, "UNAVAILABLE", "The executor serving this call went away.", "executor_lost"),
    ]
    answer = await asgi_call("POST", CHAT, headers=bearer, body=chat_body(stream=True))
    events = [json.loads(e.removeprefix("data: ")) for e in answer.body.decode().split("\n\n") if e]
    assert events[0]["choices"][0]["delta"]["content"] == "Hi"
    assert events[-1]["error"]["message"] == "The executor serving this call went away."
    assert "[DONE]" not in answer.body.decode()
    (record,) = await _records()
    assert (record.outcome, record.prompt_tokens) == ("executor_lost", 7)
