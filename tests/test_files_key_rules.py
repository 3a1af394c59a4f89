"""A key's rules (IP allow-list, expiry, revocation) hold on every Files API route, answered in Google's shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api_doubles import asgi_call
from tests.files_client import start_upload

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.api_fixtures", "tests.files_fixtures"]

# (method, path, query): every route a key opens in the Files API.
ROUTES = [
    ("GET", "/v1beta/files", ""),
    ("GET", "/v1beta/files/abc123", ""),
    ("DELETE", "/v1beta/files/abc123", ""),
    ("GET", "/v1beta/files/abc123:download", "alt=media"),
    ("POST", "/upload/v1beta/files", "uploadType=media"),
]


@pytest.mark.parametrize(("method", "path", "query"), ROUTES)
async def test_a_key_limited_to_another_network_is_refused(amake_key, file_storage, method, path, query) -> None:
    _, secret = await amake_key(ip_allowlist="10.0.0.0/8")

    answer = await asgi_call(method, path, query=query, headers={"x-goog-api-key": secret}, body=b"x")

    assert answer.status == 403
    assert answer.error["status"] == "PERMISSION_DENIED"
    assert "127.0.0.1" in answer.error["message"]


@pytest.mark.parametrize(("method", "path", "query"), ROUTES)
async def test_an_expired_key_is_refused(amake_key, file_storage, method, path, query) -> None:
    _, secret = await amake_key(expires_at=timezone.now() - timedelta(minutes=1))

    answer = await asgi_call(method, path, query=query, headers={"x-goog-api-key": secret}, body=b"x")

    assert answer.status in (400, 403)
    assert "expired" in answer.error["message"]


async def test_a_resumable_start_from_outside_the_allow_list_is_refused(amake_key, file_storage) -> None:
    _, secret = await amake_key(ip_allowlist="10.0.0.0/8")

    answer = await start_upload({"x-goog-api-key": secret}, {}, size=3)

    assert answer.status == 403
    assert "x-goog-upload-url" not in answer.headers
