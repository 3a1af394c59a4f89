"""Members' self-service pages behind login: keys, limits left now, usage, recent calls, connect panel."""

from __future__ import annotations

import pytest

from accounts import usage
from accounts.limits import admit
from accounts.usage import UsageEvent
from tests.me_page import quota_shown

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


def record_call(key, **fields) -> None:
    defaults = dict(outcome="ok", method="generateContent", model="gemini-2.5-flash", status_code=200)
    usage.record(UsageEvent(user_id=key.user_id, key_id=key.pk, **{**defaults, **fields}))


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/me/")
    assert response.status_code == 302 and response["Location"].startswith("/me/login/")


def test_a_member_logs_in_with_a_password_and_lands_on_their_page(client, member):
    response = client.post("/me/login/", {"username": "ada", "password": "pw-ada-123"})
    assert response.status_code == 302 and response["Location"] == "/me/"
    assert "Your keys" in client.get("/me/").content.decode()


def test_the_page_shows_masked_keys_and_what_remains_of_each_limit(
    member_client, make_key, counter_backend, django_assert_max_num_queries
):
    from asgiref.sync import async_to_sync

    key, secret = make_key(name="laptop", rpm=10, tpd=1000, allowed_models="gemini-2.5-*")
    admission = async_to_sync(admit)(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=b"x" * 400)
    async_to_sync(admission.settle)(120)
    with django_assert_max_num_queries(12):
        page = member_client.get("/me/").content.decode()
    assert key.masked in page and secret not in page and "laptop" in page
    assert quota_shown(page)[key.prefix] == {"rpm": (9, 10), "tpd": (880, 1000)}
    assert "requests per minute" in page and "tokens per day" in page
    assert "gemini-2.5-*" in page


def test_the_page_shows_usage_as_charts_and_the_recent_calls(member_client, make_key):
    key, _ = make_key()
    record_call(key, prompt_tokens=700, candidates_tokens=500)
    record_call(key, outcome="rejected_quota", status_code=429, model="gemini-2.5-pro")
    usage.flush()
    page = member_client.get("/me/").content.decode()
    assert page.count('<svg viewBox="0 0 720 200"') == 2
    assert "gemini-2.5-flash: 1.2k" in page
    assert "rejected: over a limit" in page and "429" in page


def test_a_member_sees_nothing_of_another_members_keys_or_calls(client, make_key, other_member):
    theirs, _ = make_key(user=other_member, name="bobs-secret-project")
    record_call(theirs, model="gemini-bob-only")
    usage.flush()
    client.force_login(other_member)
    assert "bobs-secret-project" in client.get("/me/").content.decode()
    client.force_login(make_key()[0].user)
    page = client.get("/me/").content.decode()
    assert "bobs-secret-project" not in page and "gemini-bob-only" not in page and theirs.prefix not in page


def test_the_connect_panel_has_the_base_url_and_snippets_for_each_tool(member_client, settings):
    settings.PUBLIC_BASE_URL = "https://gemini.example.com"
    page = member_client.get("/me/").content.decode()
    assert 'http_options={"base_url": "https://gemini.example.com"}' in page
    assert 'httpOptions: { baseUrl: "https://gemini.example.com" }' in page
    assert 'curl "https://gemini.example.com/v1beta/models/gemini-2.5-flash:streamGenerateContent' in page
    assert "GOOGLE_PROXY_URL=https://gemini.example.com" in page


def test_without_a_public_base_url_the_panel_uses_the_address_the_page_was_served_from(member_client, settings):
    settings.PUBLIC_BASE_URL = ""
    assert '<code id="base-url">http://testserver</code>' in member_client.get("/me/").content.decode()


def test_the_page_still_renders_when_the_counters_are_unreachable(member_client, make_key, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1"
    settings.GEMPROXY_COUNTERS = "accounts.counters.in_redis.RedisCounters"
    key, _ = make_key(rpm=10)
    shown = quota_shown(member_client.get("/me/").content.decode())
    assert shown[key.prefix] == {"rpm": "requests per minute limit 10 usage unavailable right now"}
