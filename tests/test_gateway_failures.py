"""A fault inside the gateway still answers in Gemini's shape, and the call is still recorded."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from accounts import usage
from accounts.models import UsageRecord
from gateway import relay

pytestmark = pytest.mark.django_db(transaction=True)

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


async def test_an_unexpected_fault_is_a_gemini_internal_error_and_is_recorded(amake_key, monkeypatch) -> None:
    _, secret = await amake_key()

    async def broken_admit(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(relay, "admit", broken_admit)

    response = await AsyncClient().post(
        GENERATE, data=b'{"contents": []}', content_type="application/json", headers={"x-goog-api-key": secret}
    )

    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": 500, "message": "An internal error occurred in the gateway.", "status": "INTERNAL"}
    }
    await sync_to_async(usage.flush)()
    record = await UsageRecord.objects.aget()
    assert (record.outcome, record.status_code, record.model) == ("gateway_error", 500, "gemini-2.5-flash")


async def test_a_refused_call_is_recorded_with_its_reason(amake_key) -> None:
    response = await AsyncClient().post(
        GENERATE, data=b"{", content_type="application/json", headers={"x-goog-api-key": "gpk_unknown"}
    )

    assert response.status_code == 400
    await sync_to_async(usage.flush)()
    record = await UsageRecord.objects.aget()
    assert (record.outcome, record.user_id) == ("rejected_auth", None)
