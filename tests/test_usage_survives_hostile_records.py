"""One hostile or refused usage record never stops usage recording, on real PostgreSQL.

PostgreSQL refuses NUL in text and UTF-8 cannot hold a lone surrogate; the
request path can put both (and any control character) into a model name, an
address or an executor's label. Before this was fixed one such record failed
its whole batch, and the writer retried that batch forever.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections

from accounts import usage
from accounts.models import UsageDaily, UsageRecord
from accounts.usage import UsageEvent, UsageWriter

# pytest-django wraps both databases in a transaction rolled back after each test.
pytestmark = pytest.mark.django_db(databases=["default", "postgresql"])

HOSTILE = "gemini\x00-2.5\ud800\x1b[31m\u202e\x85"


def keyed_event(make_key, **fields) -> UsageEvent:
    key, _ = make_key()
    defaults = dict(outcome="ok", method="generateContent", model="gemini-2.5-flash", status_code=200)
    return UsageEvent(user_id=key.user_id, key_id=key.pk, **{**defaults, **fields})


@pytest.fixture
def writer(on_postgresql) -> UsageWriter:
    return UsageWriter()


def test_a_batch_with_nul_surrogates_and_controls_in_every_text_field_is_written(writer, make_key):
    hostile = keyed_event(make_key, model=HOSTILE, method=HOSTILE, client_ip=HOSTILE, executor_account=HOSTILE)
    plain = keyed_event(make_key)
    writer.put(hostile)
    writer.put(plain)

    assert writer.flush() == 2

    row = UsageRecord.objects.exclude(pk=UsageRecord.objects.get(model="gemini-2.5-flash").pk).get()
    assert row.model == "gemini\ufffd-2.5\ufffd\ufffd[31m\ufffd\ufffd"
    assert (row.method, row.executor_account) == (row.model, row.model)
    assert "\x00" not in row.client_ip and len(row.client_ip) <= 45
    assert writer.dropped == 0


def test_text_longer_than_its_column_is_cut_not_refused(writer, make_key):
    writer.put(keyed_event(make_key, model="m" * 10_000, method="x" * 10_000, client_ip="1" * 10_000))

    assert writer.flush() == 1

    row = UsageRecord.objects.get()
    assert (len(row.model), len(row.method), len(row.client_ip)) == (200, 64, 45)


def test_counts_beyond_their_columns_are_bounded_not_refused(writer, make_key):
    writer.put(keyed_event(make_key, status_code=10**9, attempts=10**9, latency_ms=-3, prompt_tokens=10**20))

    assert writer.flush() == 1

    row = UsageRecord.objects.get()
    assert (row.status_code, row.attempts, row.latency_ms, row.prompt_tokens) == (32767, 32767, 0, 2147483647)


def test_counts_and_texts_of_the_wrong_types_are_made_to_fit_not_refused(writer, make_key):
    # What a journal line edited by hand, or a later version's record, may hold.
    event = keyed_event(make_key, response_bytes=True, request_bytes=3.7, thoughts_tokens="12", attempts="many")
    event.model, event.executor_account = 404, None  # type: ignore[assignment]
    writer.put(event)

    assert writer.flush() == 1

    row = UsageRecord.objects.get()
    assert (row.response_bytes, row.request_bytes, row.thoughts_tokens, row.attempts) == (1, 3, 12, 0)
    assert (row.model, row.executor_account) == ("404", "")


@pytest.fixture
def refuses_poison(on_postgresql):
    """The database itself refuses one kind of row, as a constraint added by an operator would."""
    connection = connections[on_postgresql]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE accounts_usagerecord ADD CONSTRAINT no_poison CHECK (model <> 'poison')")
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE accounts_usagerecord DROP CONSTRAINT no_poison")


def test_a_row_the_database_refuses_does_not_block_the_rest_of_its_batch(writer, make_key, refuses_poison):
    events = [keyed_event(make_key, model=f"gemini-{n}") for n in range(40)]
    events[17] = keyed_event(make_key, model="poison")
    for event in events:
        writer.put(event)

    assert writer.flush() == 39

    assert UsageRecord.objects.count() == 39
    assert not UsageRecord.objects.filter(model="poison").exists()
    assert writer.dropped == 1
    # The rollup holds exactly what was written.
    assert sum(UsageDaily.objects.values_list("requests", flat=True)) == 39


def test_after_a_refused_row_every_later_event_is_written(writer, make_key, refuses_poison):
    writer.put(keyed_event(make_key, model="poison"))
    writer.flush()
    for n in range(5):
        writer.put(keyed_event(make_key, model=f"later-{n}"))

    assert writer.flush() == 5
    assert writer.flush() == 0  # nothing held back, nothing retried

    assert sorted(UsageRecord.objects.values_list("model", flat=True)) == [f"later-{n}" for n in range(5)]


def test_the_queue_flows_again_after_a_hostile_event(writer, make_key):
    writer.put(keyed_event(make_key, model="gemini\x00"))
    writer.flush()
    for _ in range(5):
        writer.put(keyed_event(make_key))

    writer.flush()

    assert UsageRecord.objects.count() == 6


def test_while_the_database_is_unreachable_events_are_held_back_and_written_later(writer, make_key, monkeypatch):
    real_write = usage.write_batch

    def unreachable(events):
        raise OperationalError("connection refused")

    events = [keyed_event(make_key, model=f"gemini-{n}") for n in range(3)]
    monkeypatch.setattr(usage, "write_batch", unreachable)
    for event in events:
        writer.put(event)
    assert writer.flush() == 0
    writer.put(keyed_event(make_key, model="gemini-3"))
    assert writer.flush() == 0
    assert (writer.held_back, writer.dropped) == (4, 0)

    monkeypatch.setattr(usage, "write_batch", real_write)
    assert writer.flush() == 4
    assert sorted(UsageRecord.objects.values_list("model", flat=True)) == [f"gemini-{n}" for n in range(4)]


def test_held_back_events_are_bounded(writer, make_key, monkeypatch):
    monkeypatch.setattr(usage, "MAX_HELD_BACK", 10)
    monkeypatch.setattr(usage, "write_batch", lambda events: (_ for _ in ()).throw(OperationalError("down")))
    event = keyed_event(make_key)
    for _ in range(25):
        writer.put(event)

    writer.flush()

    assert (writer.held_back, writer.lost) == (10, 15)


def test_closing_the_writer_writes_the_events_held_back(writer, make_key, monkeypatch):
    real_write = usage.write_batch
    monkeypatch.setattr(usage, "write_batch", lambda events: (_ for _ in ()).throw(OperationalError("down")))
    for _ in range(3):
        writer.put(keyed_event(make_key))
    writer.flush()
    assert writer.held_back == 3
    writer.put(keyed_event(make_key))
    monkeypatch.setattr(usage, "write_batch", real_write)

    writer.close()

    assert UsageRecord.objects.count() == 4
