"""Calls that find their key's cached entry lapsed share one lookup (gateway.auth), and each still gets its answer."""

from __future__ import annotations

import asyncio

import pytest
from django.test import RequestFactory

from gateway import auth
from gateway.errors import ApiError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Every lookup that reaches the database."""
    made: list[str] = []
    real = auth._lookup

    def counted(secret: str):
        made.append(secret)
        return real(secret)

    monkeypatch.setattr(auth, "_lookup", counted)
    monkeypatch.setattr(auth, "_recent", {})
    return made


def request_with(secret: str):
    return RequestFactory().post("/v1beta/models/gemini-2.5-flash:generateContent", HTTP_X_GOOG_API_KEY=secret)


async def test_fifty_calls_with_an_uncached_key_make_one_lookup_and_all_authenticate(make_key, lookups) -> None:
    key, secret = await asyncio.to_thread(make_key, name="laptop")

    found = await asyncio.gather(*(auth.authenticate(request_with(secret)) for _ in range(50)))

    assert {each.pk for each in found} == {key.pk}
    assert lookups == [secret]


async def test_a_refused_key_is_refused_to_every_call_that_shared_its_lookup(make_key, lookups) -> None:
    key, secret = await asyncio.to_thread(make_key, name="laptop")
    await asyncio.to_thread(key.revoke)

    answers = await asyncio.gather(
        *(auth.authenticate(request_with(secret)) for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(answer, ApiError) and "was revoked" in answer.message for answer in answers), answers
    assert len(lookups) == 1


async def test_a_call_that_leaves_does_not_cancel_the_lookup_the_others_wait_for(make_key, lookups) -> None:
    key, secret = await asyncio.to_thread(make_key, name="laptop")
    leaving = asyncio.ensure_future(auth.authenticate(request_with(secret)))
    staying = asyncio.ensure_future(auth.authenticate(request_with(secret)))
    await asyncio.sleep(0)
    leaving.cancel()

    assert (await staying).pk == key.pk
    assert len(lookups) == 1


async def test_a_lapsed_entry_is_looked_up_again(make_key, lookups, settings) -> None:
    settings.GEMPROXY_AUTH_CACHE_SECONDS = 0
    _, secret = await asyncio.to_thread(make_key, name="laptop")

    await auth.authenticate(request_with(secret))
    await auth.authenticate(request_with(secret))

    assert lookups == [secret, secret]
