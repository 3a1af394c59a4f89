"""The contract between a foreign API surface and the relay side that serves it.

A surface (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages) is a
pure translator: ``parse`` turns the client's request into one Gemini call,
and the call's ``Translator`` turns Gemini's answer, whole or chunk by chunk,
into the surface's. Everything else (the key, body limits, aliases, admission,
dispatch, SSE parsing, usage records, errors) is the relay side's
(``gateway.compat.relay``), the same for every surface.

Adding a surface is one ``Surface`` object and its routes: a view
``@foreign_api(MySurface(), "POST")`` returning
``await SurfaceRelay(request, MySurface()).respond()`` (``gateway.compat.views``),
and a ``re_path`` in ``gateway.compat.urls`` (a new first path segment also
goes into ``gemproxy_site.handlers.API_ROOTS``).

Extensions beyond the agreed contract, all optional for a surface:
``SurfaceError.code`` (OpenAI's ``error.code``), the actions ``models.list``
and ``models.get`` (a GET with no body), and ``GeminiCall.query`` (extra query
parameters, e.g. ``pageSize``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

ACTIONS = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
    "models.list",
    "models.get",
)


@dataclass
class GeminiCall:
    model: str  # the model the client named (alias resolution happens in the relay side)
    action: str  # one of ACTIONS
    body: dict  # the Gemini request body ({} for the models.* actions)
    translator: Translator  # turns the Gemini answer into the surface's
    query: dict[str, str] = field(default_factory=dict)


class SurfaceError(Exception):
    """A request the surface refuses, before any Gemini call."""

    def __init__(
        self,
        http_status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code


class Translator(Protocol):
    def unary(self, answer: dict) -> dict: ...  # one whole Gemini answer -> the surface's JSON body

    def stream_chunk(self, chunk: dict) -> bytes: ...  # one Gemini stream chunk -> encoded events (b"" allowed)

    def stream_end(self) -> bytes: ...  # after the last chunk (e.g. "data: [DONE]\n\n", message_stop)

    def stream_error(self, status: int, message: str) -> bytes: ...  # a mid-stream failure, in the surface's shape


class UnaryTranslator:
    """A ``Translator`` for calls that never stream (models, embeddings, token counts): it has no stream events."""

    def stream_chunk(self, chunk: dict) -> bytes:
        return b""

    def stream_end(self) -> bytes:
        return b""

    def stream_error(self, status: int, message: str) -> bytes:
        return b""


class Surface(Protocol):
    name: str  # "openai.chat", "openai.responses", "anthropic.messages": the usage method's prefix

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall: ...  # raises SurfaceError

    def error_body(self, status: int, message: str, kind: str) -> dict: ...  # an error in the surface's shape


# The error kinds the relay side passes to ``error_body`` (Anthropic's names; each surface maps them to its own).
KIND_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "api_error",
}


def kind_of(status: int) -> str:
    return KIND_OF_STATUS.get(status, "invalid_request_error" if status < 500 else "api_error")
