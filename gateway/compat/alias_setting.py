"""``GEMPROXY_MODEL_ALIASES``, read by the settings: so nothing here may import Django."""

from __future__ import annotations

import re

# The grammar of gateway.resources.MODEL_ID (a test holds them equal); a copy, since settings load before Django.
GEMINI_MODEL_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
# A name a foreign client sends ("gpt-4o", "claude-sonnet-4-5", "gpt-4.1-mini"): no "/" or space.
ALIAS_NAME = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
_ALIAS = re.compile(ALIAS_NAME)


def parse_aliases(text: str) -> dict[str, str]:
    """``"gpt-4o=gemini-2.5-flash, claude-sonnet-4-5=gemini-2.5-pro"`` -> a dict; ValueError on a bad entry."""
    aliases: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        name, equals, model = (part.strip() for part in entry.partition("="))
        model = model.removeprefix("models/")
        if not equals or not _ALIAS.fullmatch(name) or not GEMINI_MODEL_ID.fullmatch(model):
            raise ValueError(f"GEMPROXY_MODEL_ALIASES: {entry.strip()!r} is not name=gemini-model-id")
        aliases[name] = model
    return aliases
