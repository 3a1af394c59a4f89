"""The models the stand-in serves, in ListModels' shape, and looking one up by id."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from executors.standin.errors import GoogleError

API_VERSIONS = ("v1", "v1beta", "v1alpha")

_GENERATE_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED_METHODS = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]


def _model(model_id: str, display: str, output_limit: int, methods: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "baseModelId": model_id,
        "version": "001",
        "displayName": display,
        "description": f"{display}, as imitated by gemproxy's local stand-in (not Google): it echoes the prompt.",
        "inputTokenLimit": 1048576 if methods is _GENERATE_METHODS else 2048,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": methods,
        **extra,
    }


_SAMPLING = {"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2}
MODELS: list[dict[str, Any]] = [
    _model("gemini-2.5-flash", "Gemini 2.5 Flash", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.5-pro", "Gemini 2.5 Pro", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 65536, _GENERATE_METHODS, **_SAMPLING, thinking=True),
    _model("gemini-2.0-flash", "Gemini 2.0 Flash", 8192, _GENERATE_METHODS, **{**_SAMPLING, "topK": 40}),
    _model("text-embedding-004", "Text Embedding 004", 1, _EMBED_METHODS),
    _model("gemini-embedding-001", "Gemini Embedding 001", 1, _EMBED_METHODS),
]
_MODELS_BY_ID = {m["baseModelId"]: m for m in MODELS}
EMBEDDING_DIMENSIONS = {"text-embedding-004": 768, "gemini-embedding-001": 3072}


def _find_model(model_id: str, request: web.Request, method: str = "") -> dict[str, Any]:
    model = _MODELS_BY_ID.get(model_id)
    version = request.path.split("/")[1]
    if model is None:
        if method:
            raise GoogleError(
                404,
                f"models/{model_id} is not found for API version {version}, or is not supported for {method}. "
                "Call ListModels to see the list of available models and their supported methods.",
            )
        raise GoogleError(404, f"models/{model_id} is not found for API version {version}.")
    return model
