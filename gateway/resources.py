"""Resource names in the URL, checked against Google's grammar before any of them reaches an upstream URL.

Django decodes the path before routing, so ``models/gemini%3Fx`` arrives as
``models/gemini?x``: a name taken from the URL is untrusted text. Only names
of this grammar are accepted, and upstream paths are built from them alone.

Model ids, as Google spells them (``gemini-2.5-flash``, ``gemini-2.0-flash-001``,
``text-embedding-004``, ``gemini-exp-1206``, ``gemini-2.5-flash-preview-05-20``,
``gemma-3-27b-it``, ``aqa``), and tuned model ids (``my-model-abc123``): lowercase
ASCII letters and digits, with ``-``, ``.`` and ``_`` inside; they begin and end
with a letter or a digit, at most 128 characters. No ``/``, ``?``, ``#``, ``%``,
no space or control character, nothing outside ASCII: nothing that a URL, a
request line or a log line would read differently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from gateway.errors import ApiError, invalid_argument

MODEL_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
COLLECTIONS = ("models", "tunedModels")
_QUOTED_LIMIT = 120


@dataclass(frozen=True)
class ModelName:
    """``models/gemini-2.5-flash`` or ``tunedModels/my-model-abc123``, validated."""

    collection: str
    model_id: str

    def __str__(self) -> str:
        return f"{self.collection}/{self.model_id}"


def quoted(text: str) -> str:
    """``text`` for an error message: escaped (no control character survives) and bounded."""
    if len(text) > _QUOTED_LIMIT:
        text = text[:_QUOTED_LIMIT] + "..."
    return json.dumps(text)


def model_name(resource: str) -> ModelName:
    """The validated name; an ApiError (400 INVALID_ARGUMENT, as Google answers) otherwise."""
    collection, _, model_id = resource.partition("/")
    if collection not in COLLECTIONS:
        raise ApiError(404, "NOT_FOUND", f"Unknown resource collection {quoted(collection)}.")
    if not MODEL_ID.fullmatch(model_id):
        raise invalid_argument(
            f"Invalid model name {quoted(resource)}: a model id is lowercase letters, digits, '-', '.' and '_', "
            'beginning and ending with a letter or a digit (for example "models/gemini-2.5-flash").'
        )
    return ModelName(collection, model_id)
