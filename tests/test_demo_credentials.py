"""The demo's key and executor token: issued once, reused across restarts, replaced when they no longer work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accounts.models import ProxyKey
from executors.models import ExecutorAccount
from gemproxy_site.demo_credentials import demo_credentials

pytestmark = pytest.mark.django_db


@pytest.fixture
def credentials_file(tmp_path: Path) -> Path:
    return tmp_path / "demo" / "credentials.json"


def issue(path: Path) -> tuple[str, str]:
    return demo_credentials(path, "demo", "demo (gemproxy stand-in)")


def test_it_issues_a_working_key_and_token_kept_in_a_file_only_its_owner_reads(credentials_file):
    key, token = issue(credentials_file)

    assert ProxyKey.objects.matching(key).user.username == "demo"
    assert ExecutorAccount.objects.matching(token).label == "demo (gemproxy stand-in)"
    assert json.loads(credentials_file.read_text()) == {"proxy_key": key, "executor_token": token}
    assert credentials_file.stat().st_mode & 0o777 == 0o600


def test_a_restarted_demo_reuses_the_same_key_and_token(credentials_file):
    first = issue(credentials_file)

    assert issue(credentials_file) == first
    assert ProxyKey.objects.count() == 1


def test_a_revoked_key_is_replaced_and_the_token_kept(credentials_file):
    key, token = issue(credentials_file)
    ProxyKey.objects.get().revoke()

    new_key, same_token = issue(credentials_file)

    assert new_key != key and ProxyKey.objects.matching(new_key)
    assert same_token == token


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", '{"proxy_key": 7, "executor_token": null}'])
def test_an_unreadable_file_gives_fresh_secrets_and_revokes_the_lost_key(credentials_file, stored):
    key, token = issue(credentials_file)
    credentials_file.write_text(stored)

    new_key, new_token = issue(credentials_file)

    assert ProxyKey.objects.matching(new_key) and ExecutorAccount.objects.matching(new_token)
    assert ProxyKey.objects.matching(key) is None  # a key nobody can see again is of no use to anyone
    assert ExecutorAccount.objects.matching(token) is None
