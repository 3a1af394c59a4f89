"""The writer adds each batch to the rollup with one upsert per group: one row per group, on SQLite and PostgreSQL.

Calls without a key (and keys without a member) have NULLs in the group,
which a plain unique index would keep apart: their batches must still add up
in one row.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from accounts import usage
from accounts.models import UsageDaily
from accounts.usage import UsageEvent

# The PostgreSQL database exists for every test (pytest-django needs the alias), and takes the writes in half of them.
pytestmark = [
    pytest.mark.usefixtures("postgresql_database"),
    pytest.mark.django_db(databases=["default", "postgresql"]),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("on_postgresql")
    return request.param


def write_batches(*batches: list[UsageEvent]) -> None:
    for batch in batches:
        usage.write_batch(batch)


def keyed(key_id: int | None, user_id: int | None, **fields) -> UsageEvent:
    return UsageEvent(**{"outcome": "ok", "model": "gemini-2.5-flash", **fields}, key_id=key_id, user_id=user_id)


def test_batches_of_one_group_add_up_in_one_row(database) -> None:
    write_batches([keyed(1, 1, prompt_tokens=3)], [keyed(1, 1, prompt_tokens=4), keyed(1, 1, latency_ms=10)])

    row = UsageDaily.objects.get()
    assert (row.requests, row.prompt_tokens, row.latency_ms) == (3, 7, 10)


def test_calls_without_a_key_share_one_row_across_batches(database) -> None:
    def anonymous() -> UsageEvent:
        return UsageEvent(outcome="rejected_auth", method="generateContent", status_code=400, model="made-up")

    write_batches([anonymous()], [anonymous()])

    row = UsageDaily.objects.get()
    assert (row.key_id, row.user_id, row.model, row.requests) == (None, None, "", 2)


def test_a_key_without_a_member_keeps_one_row(database) -> None:
    write_batches([keyed(5, None)], [keyed(5, None)])

    assert list(UsageDaily.objects.values_list("key_id", "user_id", "requests")) == [(5, None, 2)]


def test_groups_stay_apart(database) -> None:
    write_batches([keyed(1, 1), keyed(2, 1), keyed(1, 1, outcome="timeout")], [keyed(2, 1)])

    assert sorted(UsageDaily.objects.values_list("key_id", "outcome", "requests")) == [
        (1, "ok", 1),
        (1, "timeout", 1),
        (2, "ok", 2),
    ]


def test_the_database_refuses_a_second_row_for_a_group(database) -> None:
    write_batches([keyed(None, None, outcome="rejected_auth")])
    day = UsageDaily.objects.get()

    with pytest.raises(IntegrityError):
        UsageDaily.objects.create(day=day.day, outcome="rejected_auth")
