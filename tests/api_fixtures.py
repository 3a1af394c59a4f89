"""Fixtures for calls through the gateway's ASGI app; a test module names this in its ``pytest_plugins``."""

from __future__ import annotations

import pytest

from gateway import relay
from tests.api_doubles import ScriptedExchanges


@pytest.fixture
def exchanges(monkeypatch) -> ScriptedExchanges:
    """The scripted dispatcher, in place of the real one for this test."""
    script = ScriptedExchanges()
    monkeypatch.setattr(relay, "Exchange", script)
    return script


@pytest.fixture
async def key_header(amake_key) -> dict[str, str]:
    """The headers of an SDK call with a valid proxy key."""
    _, secret = await amake_key()
    return {"x-goog-api-key": secret, "content-type": "application/json"}
