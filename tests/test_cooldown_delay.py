"""How long an account cools down after a 429 comes from the upstream's answer, never trusted blindly."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from executors.cooldown import MAX_DELAY, READ_LIMIT, RETRY_INFO, upstream_delay

NOW = 1_800_000_000.0


def google_429(*details: object, message: object = "You exceeded your current quota.") -> bytes:
    error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": list(details)}
    return json.dumps({"error": error}).encode()


def retry_info(delay: object) -> dict:
    return {"@type": RETRY_INFO, "retryDelay": delay}


def test_googles_retry_delay_is_read_from_the_details() -> None:
    quota_failure = {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []}
    assert upstream_delay({}, google_429(quota_failure, retry_info("36s")), NOW) == 36.0


def test_a_fractional_retry_delay_keeps_its_fraction() -> None:
    assert upstream_delay({}, google_429(retry_info("36.2s")), NOW) == pytest.approx(36.2)


def test_the_messages_exact_time_refines_retry_infos_whole_seconds() -> None:
    message = "You exceeded your current quota, ...\n* Quota exceeded ...\nPlease retry in 36.962214405s."
    assert upstream_delay({}, google_429(retry_info("36s"), message=message), NOW) == pytest.approx(36.962214405)


@pytest.mark.parametrize("said", ["Please retry in 3600s.", "Please retry in 35.9s.", "Please retry in 1e9s.", 42])
def test_a_message_that_disagrees_with_retry_info_is_ignored(said: object) -> None:
    assert upstream_delay({}, google_429(retry_info("36s"), message=said), NOW) == 36.0


def test_a_delay_under_a_second_is_raised_to_one_second() -> None:
    assert upstream_delay({}, google_429(retry_info("0s")), NOW) == 1.0
    assert upstream_delay({}, google_429(retry_info("0.2s")), NOW) == 1.0


def test_retry_info_wins_over_retry_after() -> None:
    assert upstream_delay({"Retry-After": "90"}, google_429(retry_info("5s")), NOW) == 5.0


def test_a_streams_error_array_is_read_too() -> None:
    body = b"[" + google_429(retry_info("12s")) + b"]"
    assert upstream_delay({}, body, NOW) == 12.0


HOSTILE_DELAYS = {
    "huge": "99999999s",
    "beyond an hour": f"{int(MAX_DELAY) + 1}s",
    "too many digits": "1234567890s",
    "negative": "-5s",
    "no unit": "36",
    "minutes": "1m",
    "exponent": "1e3s",
    "NaN": "NaNs",
    "infinity": "infs",
    "spaces": " 36s",
    "a number": 36,
    "an object": {"seconds": 36},
    "null": None,
    "ten fraction digits": "1.0000000001s",
}


@pytest.mark.parametrize("delay", HOSTILE_DELAYS.values(), ids=HOSTILE_DELAYS.keys())
def test_a_hostile_retry_delay_is_not_believed(delay: object) -> None:
    assert upstream_delay({}, google_429(retry_info(delay)), NOW) is None


@pytest.mark.parametrize("delay", ["99999999s", "junk"])
def test_a_hostile_retry_delay_falls_back_to_retry_after(delay: str) -> None:
    assert upstream_delay({"retry-after": "20"}, google_429(retry_info(delay)), NOW) == 20.0


HOSTILE_BODIES = {
    "empty": b"",
    "not JSON": b"<html>Too Many Requests</html>",
    "not UTF-8": b"\xff\xfe{",
    "a string": b'"36s"',
    "error is a list": b'{"error": []}',
    "details is an object": b'{"error": {"details": {"@type": "x"}}}',
    "details of numbers": b'{"error": {"details": [1, 2, 3]}}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "retry info past the read limit": google_429({"padding": "x" * READ_LIMIT}, retry_info("5s")),
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_body_without_a_sound_retry_info_says_nothing(body: bytes) -> None:
    assert upstream_delay({}, body, NOW) is None


def test_a_retry_info_beyond_the_thirty_second_detail_is_not_looked_for() -> None:
    padding = [{"@type": "other"}] * 40
    assert upstream_delay({}, google_429(*padding, retry_info("5s")), NOW) is None


def test_retry_after_in_seconds() -> None:
    assert upstream_delay({"Retry-After": "17"}, b"", NOW) == 17.0


def test_retry_after_as_an_http_date() -> None:
    assert upstream_delay({"Retry-After": formatdate(NOW + 30, usegmt=True)}, b"", NOW) == 30.0


def test_retry_after_a_date_in_the_past_is_the_shortest_delay() -> None:
    assert upstream_delay({"Retry-After": formatdate(NOW - 300, usegmt=True)}, b"", NOW) == 1.0


@pytest.mark.parametrize(
    "value",
    ["soon", "-1", "1.5", "1e9", "99999999999", "3601", formatdate(NOW + 86_400, usegmt=True), "Mon, 99 Foo 2030"],
)
def test_a_hostile_retry_after_is_not_believed(value: str) -> None:
    assert upstream_delay({"Retry-After": value}, b"", NOW) is None


def test_silence_is_none_so_the_configured_default_applies() -> None:
    assert upstream_delay({"content-type": "application/json"}, google_429(), NOW) is None
