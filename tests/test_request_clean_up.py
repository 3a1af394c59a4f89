"""API requests skip the thread hop for Django's start-of-request clean-up; other requests keep it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

from gemproxy_site import handlers


@pytest.fixture
def clean_ups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    monkeypatch.setattr(handlers, "_clean_up_connections", lambda: seen.append("clean-up"))
    handlers.skip_start_of_request_clean_up_for_the_api()
    yield seen
    # Back to Django's own wiring, which its test client expects.
    request_started.disconnect(dispatch_uid="gemproxy.request_started")
    request_started.connect(reset_queries)
    request_started.connect(close_old_connections)


async def test_an_api_request_starts_without_the_clean_up(clean_ups: list[str]) -> None:
    await request_started.asend(sender=handlers.ApiHandler, scope={})

    assert clean_ups == []


async def test_a_site_request_still_cleans_up_first(clean_ups: list[str]) -> None:
    await request_started.asend(sender=handlers.SiteHandler, scope={})

    assert clean_ups == ["clean-up"]
