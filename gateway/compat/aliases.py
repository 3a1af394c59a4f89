"""Which Gemini model serves the model name a foreign client sent.

Aliases come from the admin-editable table (``gateway.models.ModelAlias``),
then from ``GEMPROXY_MODEL_ALIASES`` ("gpt-4o=gemini-2.5-flash,..."); the
table wins. A name that is not an alias is served as itself only when it is
a Gemini model id (``gemini-2.5-flash``, ``models/gemini-2.5-flash``,
``gemma-3-27b-it``, ``text-embedding-004``): any other name gets a 404 that
lists what is offered, never a silent substitute. The table is read at most
every ``CACHE_SECONDS`` per process, off the event loop.
"""

from __future__ import annotations

import re
import time

from channels.db import database_sync_to_async
from django.conf import settings

from gateway.compat.surface import SurfaceError
from gateway.resources import MODEL_ID

CACHE_SECONDS = 5.0
# Google's model families: a name of these is a Gemini model, even one this gateway has not heard of.
GEMINI_FAMILIES = re.compile(r"(gemini|gemma|learnlm|imagen|veo|text-embedding|embedding|aqa)(-|$)")

_cached: tuple[float, dict[str, str]] = (0.0, {})


def _from_table() -> dict[str, str]:
    from gateway.models import ModelAlias

    return dict(ModelAlias.objects.values_list("name", "model"))


async def aliases() -> dict[str, str]:
    """Every alias, the table's over the setting's."""
    global _cached
    now = time.monotonic()
    if _cached[0] <= now:
        table = await database_sync_to_async(_from_table)()
        _cached = (now + CACHE_SECONDS, {**settings.GEMPROXY_MODEL_ALIASES, **table})
    return _cached[1]


def forget_cached() -> None:
    global _cached
    _cached = (0.0, {})


def is_gemini_model(name: str) -> bool:
    return bool(MODEL_ID.fullmatch(name) and GEMINI_FAMILIES.match(name))


async def resolve(requested: str) -> str:
    """The Gemini model id for ``requested``; a SurfaceError (404, model_not_found) naming what is offered."""
    known = await aliases()
    if requested in known:
        return known[requested]
    bare = requested.removeprefix("models/")
    if is_gemini_model(bare):
        return bare
    offered = ", ".join(sorted(known)) or "none configured"
    shown = requested if len(requested) <= 100 else requested[:100] + "..."
    raise SurfaceError(
        404,
        f"The model {shown!r} does not exist on this gateway. It serves Gemini models by their ids "
        f"(e.g. gemini-2.5-flash; GET /v1beta/openai/models lists them) and these aliases: {offered}.",
        kind="not_found_error",
        param="model",
        code="model_not_found",
    )
