"""OpenAI's ``GET /models`` and ``GET /models/{id}`` from Gemini's models.list and models.get.

Each Gemini model is listed by its bare id (``gemini-2.5-flash``, as OpenAI
clients show and send it; ``models/gemini-2.5-flash`` is accepted back too),
followed by the gateway's aliases (``owned_by: gemproxy``), each listed once.
Gemini's model fields beyond the id (displayName, description, token limits,
supportedGenerationMethods, sampling defaults, thinking) have no place in
OpenAI's model object and are not relayed; ``created`` is 0, Gemini gives no
date. One page of up to ``PAGE_SIZE`` models is read; a further
``nextPageToken`` is not followed (Google lists far fewer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.compat.openai_chat import error_body
from gateway.compat.surface import GeminiCall, SurfaceError, UnaryTranslator

PAGE_SIZE = 1000


def model_object(model_id: str, owned_by: str = "google") -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by}


@dataclass
class ModelListTranslator(UnaryTranslator):
    aliases: Mapping[str, str] = field(default_factory=dict)

    def unary(self, answer: dict) -> dict:
        listed = answer.get("models")
        data, seen = [], set()
        for model in listed if isinstance(listed, list) else []:
            name = model.get("name") if isinstance(model, dict) else None
            if isinstance(name, str) and name.startswith("models/") and name not in seen:
                seen.add(name)
                data.append(model_object(name.removeprefix("models/")))
        data += [model_object(alias, "gemproxy") for alias in sorted(self.aliases)]
        return {"object": "list", "data": data}


@dataclass
class ModelTranslator(ModelListTranslator):
    requested: str = ""

    def unary(self, answer: dict) -> dict:
        return model_object(self.requested, "gemproxy" if self.requested in self.aliases else "google")


@dataclass
class OpenAIModels:
    """``parse`` reads no body: the model id (or none, to list) comes from the URL."""

    model_id: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    name: str = "openai.models"

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        if self.model_id is None:
            return GeminiCall("", "models.list", {}, ModelListTranslator(self.aliases), {"pageSize": str(PAGE_SIZE)})
        if not self.model_id:
            raise SurfaceError(404, "No model id was given.", kind="not_found_error", code="model_not_found")
        return GeminiCall(self.model_id, "models.get", {}, ModelTranslator(self.aliases, self.model_id))

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)
