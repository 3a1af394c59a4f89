"""The official google-genai SDK works through the gateway exactly as against Google."""

from __future__ import annotations

import threading

import pytest
from google.genai import errors, types

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Gateway, ThreadedUpstream


@pytest.mark.parametrize("api_version", [None, "v1beta"], ids=["default-v1", "v1beta"])
def test_generate_content_answers_as_google_does(gateway: Gateway, proxy_key: str, api_version: str | None) -> None:
    client = sdk_client(gateway, proxy_key, api_version)

    response = client.models.generate_content(model="gemini-2.5-flash", contents="hello there")

    assert response.text.startswith("echo: hello there")
    assert response.usage_metadata.total_token_count > 0
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_the_upstream_never_sees_the_clients_key(gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream) -> None:
    sdk_client(gateway, proxy_key).models.generate_content(model="gemini-2.5-flash", contents="whose key is this")

    request = next(r for r in reversed(upstream.requests) if b"whose key is this" in r.body)
    assert request.headers["x-goog-api-key"] == "upstream-key-of-executor-1"
    assert proxy_key not in repr(request.headers) + request.query


def test_stream_arrives_chunk_by_chunk_not_buffered(
    gateway: Gateway, proxy_key: str, upstream: ThreadedUpstream
) -> None:
    client = sdk_client(gateway, proxy_key)
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="tell a story #hold #chunks=3")

    # The fake upstream holds every chunk after the first until released, so
    # reading the first chunk proves it was relayed before the rest existed.
    first = next(iter(stream))
    assert first.text
    upstream.release()
    rest = list(stream)

    assert len(rest) == 2
    assert rest[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_stream_through_v1beta_gives_the_full_text(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")

    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="count me #chunks=4"))

    assert len(chunks) == 4
    assert "".join(chunk.text for chunk in chunks).startswith("echo: count me")


def test_count_tokens(gateway: Gateway, proxy_key: str) -> None:
    result = sdk_client(gateway, proxy_key).models.count_tokens(model="gemini-2.5-flash", contents="one two three")

    assert result.total_tokens > 0


def test_embed_content_uses_batch_embed(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key, "v1beta")

    result = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["first text", "second text"],
        config=types.EmbedContentConfig(output_dimensionality=8),
    )

    assert [len(embedding.values) for embedding in result.embeddings] == [8, 8]


def test_models_list_and_get(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)

    names = [model.name for model in client.models.list()]
    model = client.models.get(model="gemini-2.5-flash")

    assert "models/gemini-2.5-flash" in names
    assert model.name == "models/gemini-2.5-flash"
    assert model.input_token_limit > 0


def test_upstream_errors_reach_the_sdk_as_google_errors(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)

    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="please fail #error=400")

    assert raised.value.code == 400


def test_a_wrong_key_is_refused_as_google_refuses_it(gateway: Gateway) -> None:
    client = sdk_client(gateway, "gpk_not-a-real-key")

    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    assert raised.value.code == 400
    assert raised.value.status == "INVALID_ARGUMENT"
    assert "API key not valid" in raised.value.message


def test_concurrent_streams_do_not_mix(gateway: Gateway, proxy_key: str) -> None:
    client = sdk_client(gateway, proxy_key)
    texts: dict[int, str] = {}

    def run(n: int) -> None:
        chunks = client.models.generate_content_stream(model="gemini-2.5-flash", contents=f"stream {n} #chunks=5")
        texts[n] = "".join(chunk.text for chunk in chunks)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(texts) == list(range(8))
    for n, text in texts.items():
        assert text.startswith(f"echo: stream {n} ")
