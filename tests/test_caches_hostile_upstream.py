"""An executor's answer to a cache create is read as hostile: a malformed one is a 503 in Google's shape, not a 500."""

from __future__ import annotations

import json

import pytest

from resources import upstream
from resources.models import CachedContent
from tests.api_doubles import asgi_call

pytestmark = pytest.mark.django_db(transaction=True)

BODY = json.dumps({"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "x"}]}]}).encode()
GOOD_NAME = "cachedContents/abc123"


@pytest.fixture
async def headers(amake_key) -> dict[str, str]:
    _, secret = await amake_key()
    return {"x-goog-api-key": secret, "content-type": "application/json"}


@pytest.fixture
def answer_with(monkeypatch, django_user_model):
    from executors.models import ExecutorAccount

    def script(status: int, body: bytes) -> None:
        account = ExecutorAccount.objects.create(label=f"scripted-{status}-{len(body)}")

        async def call(*args, **kwargs) -> upstream.UpstreamAnswer:
            return upstream.UpstreamAnswer(status, {}, body, account.pk, account.label)

        monkeypatch.setattr(upstream, "call", call)

    return script


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"not json"),
        (200, b"[1]"),
        (200, b'{"name": 5}'),
        (200, b'{"name": "cachedContents/../../x"}'),
        (200, json.dumps({"name": "cachedContents/" + "a" * 300}).encode()),
        (302, b""),
        (500, b"<html>oops</html>"),
        (429, b'{"error": "not an object"}'),
    ],
)
async def test_a_malformed_upstream_answer_is_a_503(answer_with, headers, status, body) -> None:
    await _sync(answer_with, status, body)

    answer = await asgi_call("POST", "/v1beta/cachedContents", headers=headers, body=BODY)

    assert (answer.status, answer.error["status"]) == (503, "UNAVAILABLE")
    assert set(answer.error) >= {"code", "message", "status"}
    assert await CachedContent.objects.acount() == 0


async def test_a_malformed_token_count_is_left_out(answer_with, headers) -> None:
    created = {"name": GOOD_NAME, "usageMetadata": {"totalTokenCount": "lots"}, "expireTime": "garbage"}
    await _sync(answer_with, 200, json.dumps(created).encode())

    answer = await asgi_call("POST", "/v1beta/cachedContents", headers=headers, body=BODY)

    assert answer.status == 200, answer.body
    assert "usageMetadata" not in answer.json()
    assert answer.json()["name"] != GOOD_NAME


async def _sync(function, *args) -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(function)(*args)


async def test_a_backing_service_down_is_503_not_500(monkeypatch, headers) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def call(*args, **kwargs) -> upstream.UpstreamAnswer:
        raise RedisConnectionError("the channel layer is down")

    monkeypatch.setattr(upstream, "call", call)

    answer = await asgi_call("POST", "/v1beta/cachedContents", headers=headers, body=BODY)

    assert (answer.status, answer.error["status"], answer.headers.get("retry-after")) == (503, "UNAVAILABLE", "5")
