"""The Anthropic routes hand each call to the relay side with the right surface; the anthropic SDK works through them.

The relay side is a stand-in here (tests/compat_relay_double.py); the SDK
reaches Django's URL resolver and the views through an in-process transport.
"""

from __future__ import annotations

import httpx2
import pytest
from anthropic import AsyncAnthropic, BadRequestError
from django.http import JsonResponse
from django.test import AsyncClient, override_settings
from django.urls import include, path

from gateway.compat import anthropic_routes
from tests.compat_relay_double import RelayDouble

RELAY = RelayDouble()


async def native_list_models(request, version):
    return JsonResponse({"models": [], "served_by": "gemini", "version": version})


urlpatterns = [
    path(
        "",
        include(
            anthropic_routes.urlpatterns_for(RELAY.serve, native_list_models, lambda: {"claude-x": "gemini-2.5-flash"})
        ),
    )
]

pytestmark = pytest.mark.usefixtures("routes")


@pytest.fixture
def routes():
    with override_settings(ROOT_URLCONF=__name__):
        yield


def sdk() -> AsyncAnthropic:
    django = AsyncClient()

    async def through_django(request: httpx2.Request) -> httpx2.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "host")}
        if request.method == "GET":
            answer = await django.get(request.url.path, headers=headers)
        else:
            answer = await django.post(
                request.url.path, request.content, content_type="application/json", headers=headers
            )
        if answer.streaming:
            content = b"".join([chunk async for chunk in answer.streaming_content])
        else:
            content = answer.content
        return httpx2.Response(answer.status_code, headers=dict(answer.headers), content=content)

    transport = httpx2.MockTransport(through_django)
    return AsyncAnthropic(
        api_key="gp-key", base_url="http://gateway", max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )


async def test_the_sdk_creates_a_message() -> None:
    message = await sdk().messages.create(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].text == "echo: hello"
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 7, 3)
    surface, call = RELAY.calls[-1]
    assert (surface.name, call.model, call.action) == ("anthropic.messages", "claude-x", "generateContent")


async def test_the_sdk_streams_a_message() -> None:
    async with sdk().messages.stream(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == final.content[0].text == "echo: stream me"
    assert RELAY.calls[-1][1].action == "streamGenerateContent"


async def test_the_sdk_counts_tokens() -> None:
    counted = await sdk().messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens == 12
    assert RELAY.calls[-1][1].action == "countTokens"


async def test_the_sdk_lists_models_in_anthropics_shape() -> None:
    models = [model async for model in sdk().models.list()]
    assert [m.id for m in models] == ["gemini-2.5-flash", "claude-x"]


async def test_models_without_anthropic_version_stay_geminis() -> None:
    answer = await AsyncClient().get("/v1/models")
    assert answer.json() == {"models": [], "served_by": "gemini", "version": "v1"}


async def test_a_refused_request_reaches_the_sdk_as_anthropics_400() -> None:
    with pytest.raises(BadRequestError) as refused:
        await sdk().messages.create(model="m", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in refused.value.body["error"]["message"]


async def test_a_get_on_messages_is_a_405_in_anthropics_shape() -> None:
    answer = await AsyncClient().get("/v1/messages")
    assert answer.status_code == 405 and answer["Allow"] == "POST"
    assert answer.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Method GET is not allowed here; use POST."},
    }


async def test_a_browser_preflight_is_answered_without_a_key_and_allows_anthropics_headers() -> None:
    answer = await AsyncClient().options(
        "/v1/messages", headers={"access-control-request-headers": "x-api-key, anthropic-version, content-type"}
    )
    assert answer.status_code == 204
    assert {"x-api-key", "anthropic-version"} <= {h.strip() for h in answer["Access-Control-Allow-Headers"].split(",")}
    assert answer["X-Content-Type-Options"] == "nosniff"
