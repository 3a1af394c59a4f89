"""The members' page shows, for each key, exactly what the quota counters leave of each limit now."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from accounts.counters import get_counters
from accounts.limits import admit
from tests.me_page import quota_shown

pytestmark = pytest.mark.django_db

LIMITS = dict(rpm=20, rpd=500, tpm=9000, tpd=250_000, concurrency=3)


def call(key, tokens: int, *, settle: bool = True):
    admission = async_to_sync(admit)(key, model="gemini-2.5-flash", client_ip="10.0.0.1", request_body=b"x" * 800)
    if settle:
        async_to_sync(admission.settle)(tokens)
    return admission


def test_after_some_calls_each_limit_shows_what_the_counters_leave(client, member, make_key, counter_backend):
    busy, _ = make_key(name="busy", **LIMITS)
    idle, _ = make_key(name="idle", rpm=5)
    for tokens in (120, 340, 1_000):
        call(busy, tokens)
    in_flight = call(busy, 0, settle=False)  # holds a concurrency slot and its token reservation

    client.force_login(member)
    shown = quota_shown(client.get("/me/").content.decode())

    counts = get_counters().counts_now([busy.pk])[busy.pk]
    assert shown[busy.prefix] == {name: (size - getattr(counts, name), size) for name, size in LIMITS.items()}
    assert shown[busy.prefix]["rpm"] == (16, 20) and shown[busy.prefix]["concurrency"] == (2, 3)
    assert shown[busy.prefix]["tpd"][0] < 250_000 - 1_460  # the open call's reservation is counted too
    assert shown[idle.prefix] == {"rpm": (5, 5)}
    async_to_sync(in_flight.settle)(10)


def test_a_limit_used_up_shows_nothing_left(client, member, make_key, counter_backend):
    key, _ = make_key(rpm=2)
    call(key, 0)
    call(key, 0)
    client.force_login(member)
    page = client.get("/me/").content.decode()
    assert quota_shown(page)[key.prefix] == {"rpm": (0, 2)}
    assert 'class="meter is-out"' in page


def test_big_limits_are_shown_exactly_with_grouped_digits(client, member, make_key):
    key, _ = make_key(tpd=2_000_000)
    call(key, 1_234)
    client.force_login(member)
    page = client.get("/me/").content.decode()
    assert "1,998,766 <span" in page and "1,234 of 2,000,000 used" in page
