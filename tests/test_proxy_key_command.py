"""``create_proxy_key``: limits from options, the secret as the last line of output."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ProxyKey

pytestmark = pytest.mark.django_db


def issue(*args: str) -> str:
    out = StringIO()
    call_command("create_proxy_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_it_issues_a_key_with_every_limit_and_rule():
    secret = issue(
        "--user",
        "carol",
        "--name",
        "ci",
        "--rpm",
        "10",
        "--rpd",
        "100",
        "--tpm",
        "1000",
        "--tpd",
        "5000",
        "--concurrency",
        "2",
        "--models",
        "gemini-2.5-*,gemini-2.0-flash",
        "--expires",
        "2030-01-31T12:00:00Z",
        "--ip",
        "10.0.0.0/8,2001:db8::/32",
    )
    key = ProxyKey.objects.authenticate(secret)
    assert key.user.username == "carol" and key.name == "ci"
    limits = key.policy.limits
    assert (limits.rpm, limits.rpd, limits.tpm, limits.tpd, limits.concurrency) == (10, 100, 1000, 5000, 2)
    assert key.policy.model_patterns == ("gemini-2.5-*", "gemini-2.0-flash")
    assert key.policy.networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert key.expires_at == datetime(2030, 1, 31, 12, tzinfo=UTC)


def test_without_options_the_key_has_no_limits():
    key = ProxyKey.objects.authenticate(issue("--user", "dave"))
    assert not key.policy.limits.any and key.policy.model_patterns == () and key.expires_at is None


def test_it_refuses_a_bad_cidr_without_creating_anything():
    with pytest.raises(CommandError, match="ip_allowlist"):
        issue("--user", "erin", "--ip", "10.0.0.300/8")
    assert not ProxyKey.objects.exists()


def test_it_refuses_an_expiry_that_is_not_iso_8601():
    with pytest.raises(CommandError, match="ISO 8601"):
        issue("--user", "erin", "--expires", "next tuesday")


def issue_and_tell(*args: str) -> tuple[list[str], str]:
    out, err = StringIO(), StringIO()
    call_command("create_proxy_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines(), err.getvalue()


def test_it_says_how_a_new_member_signs_in_and_the_key_stays_the_last_line(settings):
    settings.PUBLIC_BASE_URL = "https://gemini.example.com"
    lines, said = issue_and_tell("--user", "erin")

    assert "erin signs in at https://gemini.example.com/me/ (no password yet: run manage.py invite_member erin)" in said
    assert lines == [lines[-1]] and ProxyKey.objects.authenticate(lines[-1]).user.username == "erin"


def test_a_member_with_a_password_is_told_to_use_it(member, settings):
    settings.PUBLIC_BASE_URL = ""
    _, said = issue_and_tell("--user", "ada")
    assert "ada signs in at http://127.0.0.1:8000/me/ with their password." in said
