"""The rollup can be rebuilt from records; old records are pruned, the rollup stays."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from accounts import usage
from accounts.models import UsageDaily, UsageRecord
from accounts.usage import UsageEvent

pytestmark = pytest.mark.django_db


def record_days_ago(days: int, n: int = 1, **fields) -> None:
    for _ in range(n):
        usage.record(
            UsageEvent(
                outcome="ok", model="gemini-2.5-flash", created_at=timezone.now() - timedelta(days=days), **fields
            )
        )
    usage.flush()


def test_rollup_usage_rebuilds_the_days_from_the_records(member):
    record_days_ago(0, 3, user_id=member.pk, prompt_tokens=5)
    record_days_ago(1, 2, user_id=member.pk, prompt_tokens=7)
    before = sorted(UsageDaily.objects.values_list("day", "requests", "prompt_tokens"))
    UsageDaily.objects.update(requests=999)  # a damaged rollup
    call_command("rollup_usage", "--days", "2", stdout=StringIO())
    assert sorted(UsageDaily.objects.values_list("day", "requests", "prompt_tokens")) == before


def test_prune_usage_deletes_old_records_and_keeps_the_rollup(make_key):
    key, _ = make_key()
    record_days_ago(100, 2, key_id=key.pk, prompt_tokens=3)
    record_days_ago(1, 1, key_id=key.pk, prompt_tokens=4)
    out = StringIO()
    call_command("prune_usage", "--days", "30", stdout=out)
    assert "Deleted 2 usage records" in out.getvalue()
    assert UsageRecord.objects.count() == 1
    assert UsageDaily.objects.aggregate(total=Sum("prompt_tokens"))["total"] == 10


def test_prune_usage_keeps_the_configured_retention_by_default(settings):
    settings.GEMPROXY_USAGE_RETENTION_DAYS = 7
    record_days_ago(8)
    record_days_ago(6)
    call_command("prune_usage", stdout=StringIO())
    assert UsageRecord.objects.count() == 1
