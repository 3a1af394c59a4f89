"""GET /v1/models with anthropic-version: Gemini's model list in Anthropic's list shape."""

from __future__ import annotations

import json

import anthropic
import httpx2

from gateway.compat.anthropic_answers import model_list

GEMINI_MODELS = {
    "models": [
        {
            "name": "models/gemini-2.5-flash",
            "displayName": "Gemini 2.5 Flash",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        },
        {"name": "models/gemini-embedding-001", "supportedGenerationMethods": ["embedContent"]},
        {"name": "models/gemini-2.5-pro", "inputTokenLimit": "not a number"},
        "garbage",
        {"displayName": "no name"},
    ],
    "nextPageToken": "ignored",
}


def test_generating_models_are_listed_with_their_limits_and_embedders_are_not() -> None:
    listed = model_list(GEMINI_MODELS)
    assert [m["id"] for m in listed["data"]] == ["gemini-2.5-flash", "gemini-2.5-pro"]
    assert listed["data"][0] == {
        "type": "model",
        "id": "gemini-2.5-flash",
        "display_name": "Gemini 2.5 Flash",
        "created_at": "1970-01-01T00:00:00Z",
        "lifecycle": "active",
        "max_input_tokens": 1048576,
        "max_tokens": 65536,
    }
    assert "max_input_tokens" not in listed["data"][1]
    assert (listed["has_more"], listed["first_id"], listed["last_id"]) == (False, "gemini-2.5-flash", "gemini-2.5-pro")


def test_aliases_of_listed_models_are_listed_under_their_own_names() -> None:
    listed = model_list(GEMINI_MODELS, {"claude-sonnet-4-5": "gemini-2.5-pro", "claude-x": "gemini-9"})
    assert [m["id"] for m in listed["data"]] == ["gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5"]


def test_an_empty_or_broken_gemini_list_is_an_empty_anthropic_list() -> None:
    for broken in ({}, {"models": "x"}, []):
        assert model_list(broken) == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_the_anthropic_sdk_pages_through_the_list() -> None:
    body = json.dumps(model_list(GEMINI_MODELS)).encode()

    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["anthropic-version"]
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=body)

    client = anthropic.Anthropic(
        api_key="k", base_url="http://gateway", http_client=httpx2.Client(transport=httpx2.MockTransport(answer))
    )
    models = list(client.models.list())
    assert [(m.id, m.display_name) for m in models] == [
        ("gemini-2.5-flash", "Gemini 2.5 Flash"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),
    ]
