"""``/api/v1/me``: authenticated by session or by the proxy key itself, showing only the member's own data."""

from __future__ import annotations

import pytest

from accounts import usage
from accounts.usage import UsageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada_key(make_key):
    key, secret = make_key(name="laptop", rpm=10, tpm=1000, allowed_models="gemini-2.5-*")
    usage.record(
        UsageEvent(
            outcome="ok",
            model="gemini-2.5-flash",
            method="generateContent",
            user_id=key.user_id,
            key_id=key.pk,
            prompt_tokens=30,
            candidates_tokens=12,
        )
    )
    usage.flush()
    return secret


@pytest.fixture
def bob_key(make_key, other_member):
    key, secret = make_key(user=other_member, name="bob's")
    usage.record(UsageEvent(outcome="timeout", model="gemini-bob", user_id=key.user_id, key_id=key.pk))
    usage.flush()
    return secret


@pytest.mark.parametrize(
    "how",
    [
        {"HTTP_X_GOOG_API_KEY": "{secret}"},
        {"headers": {"X-Goog-Api-Key": "{secret}"}},  # as a server puts any spelling in META
        {"HTTP_AUTHORIZATION": "Bearer {secret}"},
        {"QUERY": "key={secret}"},
    ],
    ids=["x-goog-api-key", "X-Goog-Api-Key", "bearer", "query"],
)
def test_the_proxy_key_authenticates_in_each_form_gemini_clients_send_it(client, ada_key, bob_key, how):
    meta = {name: value for name, value in how.items() if name not in ("QUERY", "headers")}
    headers: dict = {name: value.format(secret=ada_key) for name, value in meta.items()}
    if "headers" in how:
        headers["headers"] = {name: value.format(secret=ada_key) for name, value in how["headers"].items()}
    query = "?" + how["QUERY"].format(secret=ada_key) if "QUERY" in how else ""
    response = client.get(f"/api/v1/me/keys{query}", **headers)
    assert response.status_code == 200
    [key] = response.json()["keys"]
    assert key["name"] == "laptop" and key["key"].startswith("gpk_") and ada_key not in response.content.decode()


def test_the_session_of_a_logged_in_member_authenticates(client, member, ada_key):
    client.force_login(member)
    assert [k["name"] for k in client.get("/api/v1/me/keys").json()["keys"]] == ["laptop"]


def test_no_credentials_get_401_with_a_bearer_challenge(client):
    response = client.get("/api/v1/me/keys")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_key_gets_401_in_googles_words(client):
    response = client.get("/api/v1/me/usage", HTTP_X_GOOG_API_KEY="gpk_not-a-key")
    assert response.status_code == 401
    assert response.json()["detail"] == "API key not valid. Please pass a valid API key."


def test_a_revoked_key_gets_401_saying_so(client, make_key):
    key, secret = make_key()
    key.revoke()
    response = client.get("/api/v1/me/keys", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_keys_show_limits_with_what_remains_now(client, ada_key, counter_backend):
    [key] = client.get("/api/v1/me/keys", HTTP_X_GOOG_API_KEY=ada_key).json()["keys"]
    assert key["status"] == "active" and key["allowed_models"] == ["gemini-2.5-*"]
    assert key["limits"]["rpm"]["limit"] == 10 and key["limits"]["rpm"]["remaining"] == 10
    assert 1 <= key["limits"]["tpm"]["resets_in_seconds"] <= 60


def test_usage_has_days_totals_models_and_recent_calls_of_the_member_only(client, ada_key, bob_key):
    body = client.get("/api/v1/me/usage?days=7&recent=5", HTTP_X_GOOG_API_KEY=ada_key).json()
    assert len(body["days"]) == 7 and body["days"][-1]["requests"] == 1 and body["days"][-1]["tokens"] == 42
    assert body["totals"]["requests"] == 1
    assert [m["model"] for m in body["models"]] == ["gemini-2.5-flash"]
    assert [(c["model"], c["prompt_tokens"]) for c in body["recent"]] == [("gemini-2.5-flash", 30)]
    assert "gemini-bob" not in str(body)


def test_the_api_is_read_only(client, ada_key):
    assert client.post("/api/v1/me/keys", HTTP_X_GOOG_API_KEY=ada_key).status_code == 405
