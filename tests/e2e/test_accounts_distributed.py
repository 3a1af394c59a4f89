"""Accounts in a distributed install (PostgreSQL + Redis, several processes): usage and sign-in under attack."""

from __future__ import annotations

import re

import httpx2 as httpx
import psycopg
import pytest

from tests.e2e.conftest import sdk_client
from tests.e2e.harness import Deployment, Gateway, ThreadedUpstream, wait_until


@pytest.fixture(scope="module")
def gateway(distributed: Deployment, upstream: ThreadedUpstream) -> Gateway:
    token = distributed.executor_token("accounts@example.com")
    return distributed.start_gateway_with_agent("accounts-a", token, upstream.url)


def usage_rows(database_url: str, where: str = "TRUE") -> tuple[int, int]:
    """(rows, calls) of the usage table."""
    with psycopg.connect(database_url) as db:
        query = f"SELECT count(*), coalesce(sum(calls), 0) FROM accounts_usagerecord WHERE {where}"
        rows, calls = db.execute(query).fetchone()
        return rows, calls


def test_a_nul_in_the_model_does_not_stop_usage_recording(
    distributed: Deployment, gateway: Gateway, postgres_database_url: str
) -> None:
    key = distributed.proxy_key("nul-sender")
    url = f"{gateway.url}/v1beta/models/gemini%00:generateContent"
    # The model id is refused before the key is looked at; the refusal is still recorded.
    assert httpx.post(url, content=b"{}").status_code == 400
    httpx.post(url, content=b'{"contents": []}', headers={"x-goog-api-key": key}, timeout=30)

    for n in range(5):
        sdk_client(gateway, key).models.generate_content(model="gemini-2.5-flash", contents=f"after the NUL {n}")

    # Each call has its record: the two NUL calls and the five good ones.
    wait_until(lambda: usage_rows(postgres_database_url)[1] == 7, timeout=15, what="7 recorded calls")
    assert usage_rows(postgres_database_url, "model = 'gemini-2.5-flash' AND outcome = 'ok'") == (5, 5)
    assert usage_rows(postgres_database_url, "model = 'gemini\ufffd'")[1] == 2


def test_a_lockout_on_one_process_holds_on_another(distributed: Deployment, gateway: Gateway) -> None:
    distributed.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_superuser('boss', password='pw-boss-123')",
    )
    other = distributed.start_gateway("accounts-b")

    for n in range(10):
        assert "correct username and password" in sign_in(gateway, "/admin/login/", "boss", f"guess-{n}")

    page = sign_in(other, "/me/login/", "boss", "pw-boss-123")
    assert "Too many failed sign-ins" in page


def sign_in(gateway: Gateway, path: str, username: str, password: str) -> str:
    with httpx.Client(base_url=gateway.url) as client:
        form = client.get(path).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        response = client.post(path, data={"username": username, "password": password, "csrfmiddlewaretoken": token})
        return response.text
