"""OpenAI's ``POST /embeddings`` as Gemini's batchEmbedContents.

``input`` (a string or an array of strings) -> one request per string, with
``dimensions`` -> ``outputDimensionality``; token arrays are refused (Gemini
embeds text). ``encoding_format`` ``float`` or ``base64`` (little-endian
float32, what the openai SDKs ask for by default). The relay names the
resolved model in every request. ``usageMetadata``, when Gemini sends it,
gives ``usage`` (0 otherwise: Gemini's embedding answers often carry none).
Not relayed: Gemini's per-embedding ``statistics`` and request ``metadata``;
``user`` is accepted and not sent.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.compat.openai_chat import error_body
from gateway.compat.surface import GeminiCall, SurfaceError, UnaryTranslator

MAX_INPUTS = 250  # Google refuses more than 250 requests in one batchEmbedContents; say so before


def _bad(message: str, param: str) -> SurfaceError:
    return SurfaceError(400, message, param=param)


def gemini_request(body: dict) -> dict:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts:
        raise _bad("'input' must be a string or a non-empty array of strings.", "input")
    if not all(isinstance(text, str) for text in texts):
        raise _bad("'input' must hold strings: token arrays are not accepted by Gemini models.", "input")
    if len(texts) > MAX_INPUTS:
        raise _bad(f"'input' holds {len(texts)} strings; at most {MAX_INPUTS} are accepted at once.", "input")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise _bad("'dimensions' must be a positive integer.", "dimensions")
    requests = []
    for text in texts:
        request: dict = {"model": "", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}


@dataclass
class EmbeddingsTranslator(UnaryTranslator):
    model: str
    encoding: str = "float"

    def unary(self, answer: dict) -> dict:
        embeddings = answer.get("embeddings")
        data = []
        for index, embedding in enumerate(embeddings if isinstance(embeddings, list) else []):
            values = embedding.get("values") if isinstance(embedding, dict) else None
            values = [float(v) for v in values if isinstance(v, (int, float))] if isinstance(values, list) else []
            encoded: list[float] | str = values
            if self.encoding == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        metadata = answer.get("usageMetadata")
        tokens = int(metadata.get("promptTokenCount") or 0) if isinstance(metadata, dict) else 0
        return {
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@dataclass
class OpenAIEmbeddings:
    name: str = "openai.embeddings"

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("You must provide a model parameter.", "model")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _bad("'encoding_format' must be float or base64.", "encoding_format")
        return GeminiCall(model, "batchEmbedContents", gemini_request(body), EmbeddingsTranslator(model, encoding))

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)
