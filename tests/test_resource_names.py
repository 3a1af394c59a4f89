"""Model names in the URL follow Google's grammar, and only validated names reach the upstream's path."""

from __future__ import annotations

import pytest

from gateway.relay import Call
from gateway.resources import MODEL_ID, ModelName
from tests.api_doubles import asgi_call

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures"]  # the fixtures exchanges and key_header

REAL_MODEL_IDS = [
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.0-flash-001",
    "gemini-2.5-flash-preview-05-20",
    "gemini-2.0-flash-thinking-exp-01-21",
    "gemini-exp-1206",
    "gemini-1.5-flash-8b",
    "gemini-2.5-flash-image-preview",
    "gemini-embedding-001",
    "text-embedding-004",
    "embedding-001",
    "imagen-3.0-generate-002",
    "veo-2.0-generate-001",
    "gemma-3-27b-it",
    "learnlm-2.0-flash-experimental",
    "aqa",
    "my-model-abc123",
]


@pytest.mark.parametrize("model_id", REAL_MODEL_IDS)
def test_every_real_model_id_fits_the_grammar(model_id: str) -> None:
    assert MODEL_ID.fullmatch(model_id)


@pytest.mark.parametrize(
    "model_id",
    ["Gemini-2.5-Flash", "-gemini", "gemini-", "gemini.", "a" * 129, "gemini 2", "gemini~1", "gemini+x", "ü", ""],
)
def test_ids_outside_the_grammar_are_refused(model_id: str) -> None:
    assert not MODEL_ID.fullmatch(model_id)


@pytest.mark.parametrize("model_id", ["gemini-2.5-flash", "my-model-abc123"])
async def test_a_real_model_reaches_the_upstream_under_its_own_path(exchanges, key_header, model_id) -> None:
    collection = "tunedModels" if model_id.startswith("my-") else "models"

    answer = await asgi_call("POST", f"/v1beta/{collection}/{model_id}:generateContent", headers=key_header, body=b"{}")

    assert answer.status == 200, answer.body
    assert exchanges.tasks[0].path == f"/v1beta/{collection}/{model_id}:generateContent"
    assert exchanges.tasks[0].model == model_id


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        ("/v1beta/models/gemini-2.5-flash%3Falt=x:generateContent", 400),  # "?" would start the upstream's query
        ("/v1beta/models/gemini-2.5-flash%23x:generateContent", 400),  # "#" would cut the upstream's path
        ("/v1beta/models/gemini%0d%0aX-Forged:%20yes:generateContent", 404),  # a forged header line: no method
        ("/v1beta/models/gemini%0d%0a:generateContent", 400),
        ("/v1beta/models/gemini%00:generateContent", 400),  # made agents log tracebacks
        ("/v1beta/models/gemini-%C3%BC:generateContent", 400),  # not ASCII
        ("/v1beta/models/gemini%20flash:generateContent", 400),
        ("/v1beta/models/%2e%2e:generateContent", 400),  # ".." climbs a path
        ("/v1beta/models/gemini%252e:generateContent", 400),  # decoded once, "%" stays: the upstream would decode again
        ("/v1beta/models/Gemini-2.5-Flash:generateContent", 400),
        ("/v1beta/models/gemini%2F..%2Fcorpora:generateContent", 404),  # "/" makes it another path
        ("/v1beta/models/gemini-2.5-flash%3F", 400),  # models.get
        ("/v1beta/tunedModels/x%23y", 400),
    ],
)
async def test_a_hostile_model_name_is_refused_in_googles_shape_and_never_dispatched(
    exchanges, key_header, raw_path: str, status: int
) -> None:
    method = "GET" if ":" not in raw_path.rsplit("/", 1)[-1] else "POST"

    answer = await asgi_call(method, raw_path, headers=key_header, body=b"{}" if method == "POST" else b"")

    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json; charset=UTF-8"
    error = answer.error
    assert error["code"] == status
    assert error["status"] == ("INVALID_ARGUMENT" if status == 400 else "NOT_FOUND")
    assert "\r" not in error["message"] and "\n" not in error["message"] and "\x00" not in error["message"]
    assert exchanges.tasks == []


def test_the_upstream_path_is_built_from_the_validated_parts_alone() -> None:
    call = Call("v1", ModelName("models", "gemini-2.5-flash"), "streamGenerateContent", streamed=True)

    assert call.upstream_path == "/v1/models/gemini-2.5-flash:streamGenerateContent"
    assert Call("v1beta", None).upstream_path == "/v1beta/models"
    assert (
        Call("v1beta", ModelName("tunedModels", "my-model-abc123")).upstream_path
        == "/v1beta/tunedModels/my-model-abc123"
    )
