"""The Responses routes hand each call to the relay side with the Responses surface; the openai SDK works through them.

The relay side is a stand-in here (tests/compat_relay_double.py); the SDK
reaches Django's URL resolver and the views through an in-process transport.
"""

from __future__ import annotations

import httpx2
import pytest
from django.test import AsyncClient, override_settings
from django.urls import include, path
from openai import AsyncOpenAI, BadRequestError

from gateway.compat import responses_routes
from gateway.compat.openai_responses import OpenAIResponses
from gateway.compat.response_store import BoundedResponseStore
from tests.compat_relay_double import RelayDouble

RELAY = RelayDouble()
urlpatterns = [
    path("", include(responses_routes.urlpatterns_for(RELAY.serve, OpenAIResponses(store=BoundedResponseStore()))))
]

pytestmark = pytest.mark.usefixtures("routes")


@pytest.fixture
def routes():
    with override_settings(ROOT_URLCONF=__name__):
        yield


def sdk(base: str, key: str = "gp-key") -> AsyncOpenAI:
    django = AsyncClient()

    async def through_django(request: httpx2.Request) -> httpx2.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "host")}
        answer = await django.post(request.url.path, request.content, content_type="application/json", headers=headers)
        content = b"".join([c async for c in answer.streaming_content]) if answer.streaming else answer.content
        return httpx2.Response(answer.status_code, headers=dict(answer.headers), content=content)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(through_django))
    return AsyncOpenAI(api_key=key, base_url=f"http://gateway/{base}", max_retries=0, http_client=client)


@pytest.mark.parametrize("base", ["v1beta/openai", "openai/v1"])
async def test_the_sdk_creates_a_response_under_both_bases(base: str) -> None:
    response = await sdk(base).responses.create(model="gpt-5", input="hello")
    assert response.output_text == "echo: hello"
    assert response.usage.input_tokens == 7 and response.usage.output_tokens == 3
    surface, call = RELAY.calls[-1]
    assert (surface.name, call.model, call.action) == ("openai.responses", "gpt-5", "generateContent")


async def test_the_sdk_streams_a_response() -> None:
    async with sdk("openai/v1").responses.stream(model="gpt-5", input="stream me") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: stream me"


async def test_a_conversation_continues_by_previous_response_id_for_the_same_key() -> None:
    client = sdk("openai/v1", "gp-key-a")
    first = await client.responses.create(model="gpt-5", input="one")
    second = await client.responses.create(model="gpt-5", input="two", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert [c["role"] for c in RELAY.calls[-1][1].body["contents"]] == ["user", "model", "user"]
    with pytest.raises(BadRequestError) as refused:
        await sdk("openai/v1", "gp-key-b").responses.create(model="gpt-5", input="x", previous_response_id=first.id)
    assert refused.value.body["message"] == f"Previous response with id '{first.id}' not found."


async def test_a_get_is_a_405_in_openais_shape() -> None:
    answer = await AsyncClient().get("/openai/v1/responses")
    assert answer.status_code == 405
    assert answer.json()["error"]["message"] == "Method GET is not allowed here; use POST."
