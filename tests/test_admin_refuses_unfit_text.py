"""Text typed or sent to the admin never fails on PostgreSQL: forms refuse what no name should hold, searches fit."""

from __future__ import annotations

import pytest

from accounts import usage
from accounts.models import ProxyKey
from accounts.usage import UsageEvent

pytestmark = pytest.mark.django_db(databases=["default", "postgresql"])


@pytest.fixture
def admin_client(on_postgresql, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", password="pw-root-123"))
    return client


@pytest.fixture
def member_id(on_postgresql, django_user_model) -> int:
    return django_user_model.objects.create_user(username="ada").pk


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "lap\x00top", "Null characters are not allowed"),
        ("name", "lap\x1b[2Jtop", "Control characters"),
        ("name", "lap\u202etop", "bidirectional overrides"),
        ("name", "x" * 10_000, "at most 100 characters"),
        ("allowed_models", "gemini-*\x07", "Control characters"),
        ("ip_allowlist", "10.0.0.0/8\x00", "Null characters are not allowed"),
    ],
    ids=["nul", "escape", "bidi", "10k", "models-bell", "cidr-nul"],
)
def test_the_key_form_refuses_unfit_text_with_a_clear_error(admin_client, member_id, field, value, message):
    response = admin_client.post("/admin/accounts/proxykey/add/", {"user": member_id, field: value})

    assert response.status_code == 200 and message in response.content.decode()
    assert not ProxyKey.objects.exists()


def test_a_list_of_models_on_several_lines_is_fine(admin_client, member_id):
    admin_client.post(
        "/admin/accounts/proxykey/add/", {"user": member_id, "allowed_models": "gemini-2.5-*\r\n\tgemini-2.0-flash"}
    )

    assert ProxyKey.objects.get().policy.model_patterns == ("gemini-2.5-*", "gemini-2.0-flash")


def test_searching_keys_for_a_nul_finds_nothing_and_fails_nothing(admin_client):
    assert admin_client.get("/admin/accounts/proxykey/?q=lap%00top").status_code == 200


def test_filtering_usage_by_a_model_with_a_nul_finds_the_record_that_held_it(admin_client):
    usage.record(UsageEvent(outcome="ok", model="gemini\x00", key_id=1, user_id=None))
    usage.flush()

    page = admin_client.get("/admin/accounts/usagerecord/?model=gemini%00")

    assert page.status_code == 200 and "gemini\ufffd" in page.content.decode()
