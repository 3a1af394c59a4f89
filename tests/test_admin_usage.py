"""Usage records (read-only, filtered) and the usage dashboard in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import usage
from accounts.usage import UsageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def recorded_usage(make_key, member, other_member):
    """A few days of calls by two members, with failures and rejections."""
    ada_key, _ = make_key(name="ada laptop")
    bob_key, _ = make_key(user=other_member, name="bob ci")
    now = timezone.now()
    calls = [
        (ada_key, "gemini-2.5-flash", "ok", 0, 1200),
        (ada_key, "gemini-2.5-flash", "ok", 1, 800),
        (ada_key, "gemini-2.5-pro", "upstream_error", 0, 0),
        (bob_key, "gemini-2.5-pro", "ok", 2, 5000),
        (bob_key, "gemini-2.5-pro", "rejected_quota", 0, 0),
        (bob_key, "gemini-2.0-flash", "timeout", 3, 0),
    ]
    for key, model, outcome, days_ago, tokens in calls:
        usage.record(
            UsageEvent(
                outcome=outcome,
                method="generateContent",
                model=model,
                status_code=200 if outcome == "ok" else 500,
                user_id=key.user_id,
                key_id=key.pk,
                prompt_tokens=tokens // 2,
                candidates_tokens=tokens // 2,
                created_at=now - timedelta(days=days_ago),
            )
        )
    usage.flush()
    return ada_key, bob_key


def test_the_usage_record_list_shows_each_call(admin_client, recorded_usage):
    page = admin_client.get("/admin/accounts/usagerecord/").content.decode()
    assert page.count("gemini-2.5-pro") >= 3
    assert "rejected_quota" in page or "rejected: over a limit" in page


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("outcome__exact=ok", 3),
        ("model=gemini-2.5-pro", 3),
        ("streamed__exact=0", 6),
    ],
)
def test_usage_records_filter_by_outcome_model_and_stream(admin_client, recorded_usage, query, rows):
    response = admin_client.get(f"/admin/accounts/usagerecord/?{query}")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows


def test_usage_records_filter_by_member_and_key(admin_client, recorded_usage, other_member):
    ada_key, _ = recorded_usage
    by_member = admin_client.get(f"/admin/accounts/usagerecord/?user__id__exact={other_member.pk}")
    assert len(by_member.context["cl"].result_list) == 3
    by_key = admin_client.get(f"/admin/accounts/usagerecord/?key__id__exact={ada_key.pk}")
    assert len(by_key.context["cl"].result_list) == 3


def test_usage_records_drill_down_by_date(admin_client, recorded_usage):
    today = timezone.now()
    response = admin_client.get(
        f"/admin/accounts/usagerecord/?created_at__year={today.year}&created_at__month={today.month}"
        f"&created_at__day={today.day}"
    )
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


def test_usage_records_are_read_only(admin_client, recorded_usage):
    assert admin_client.get("/admin/accounts/usagerecord/add/").status_code == 403
    record_id = admin_client.get("/admin/accounts/usagerecord/").context["cl"].result_list[0].pk
    assert admin_client.post(f"/admin/accounts/usagerecord/{record_id}/delete/", {"post": "yes"}).status_code == 403


def test_the_dashboard_charts_requests_tokens_and_errors_with_top_members_and_models(admin_client, recorded_usage):
    response = admin_client.get("/admin/accounts/usagedaily/?days=7")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('<svg viewBox="0 0 720 200"') == 3
    assert "Requests per day" in page and "Tokens per day, by model" in page and "Failed calls per day" in page
    assert "<title>" in page and "gemini-2.5-flash: 1.2k" in page
    totals = response.context["totals"]
    assert (totals["requests"], totals["tokens"], totals["failed"], totals["rejected"]) == (6, 7000, 2, 1)
    assert [row["name"] for row in response.context["top_users"]] == ["bob", "ada"]
    assert response.context["top_models"][0]["name"] == "gemini-2.5-pro"


def test_the_dashboard_renders_without_any_usage(admin_client):
    page = admin_client.get("/admin/accounts/usagedaily/").content.decode()
    assert "No usage in this period." in page


def test_the_dashboard_is_listed_in_the_admin_index(admin_client):
    assert "/admin/accounts/usagedaily/" in admin_client.get("/admin/").content.decode()


def test_members_who_are_not_staff_cannot_see_the_console(client, member):
    client.force_login(member)
    assert client.get("/admin/accounts/usagedaily/").status_code == 302


def test_the_usage_record_list_says_which_accounts_refused_a_call(admin_client):
    usage.record(
        UsageEvent(
            outcome="ok",
            method="generateContent",
            model="gemini-2.5-flash",
            status_code=200,
            executor_account="bob@example.com",
            refused_by="ana@example.com",
            attempts=2,
        )
    )
    usage.flush()

    page = admin_client.get("/admin/accounts/usagerecord/").content.decode()

    assert "429 from ana@example.com" in page
