"""The migration to one rollup row per group merges the rows a race had split, keeping every sum."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0009_usage_record_id")]
AFTER = [("accounts", "0010_usage_daily_one_row_per_group")]


def migrate(targets: list[tuple[str, str]]) -> Apps:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def database_before_the_migration() -> Iterator[Apps]:
    yield migrate(BEFORE)
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # the other tests' schema again


def test_split_rows_are_merged_into_one_with_their_sums(database_before_the_migration: Apps) -> None:
    UsageDaily = database_before_the_migration.get_model("accounts", "UsageDaily")
    day = date(2026, 1, 2)
    for requests, tokens in ((1, 10), (2, 20), (4, 40)):  # one group without a key, split three ways
        UsageDaily.objects.create(day=day, outcome="rejected_auth", requests=requests, prompt_tokens=tokens)
    UsageDaily.objects.create(day=day, key_id=3, user_id=1, model="m", outcome="ok", requests=5)

    rows = migrate(AFTER).get_model("accounts", "UsageDaily").objects.order_by("key_id")

    assert list(rows.values_list("key_id", "requests", "prompt_tokens")) == [(None, 7, 70), (3, 5, 0)]
