"""The status line names every standard status, where Twisted's own table stops short."""

from __future__ import annotations

import pytest

from gemproxy_site.http_channel import reason_phrase


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (200, b"OK"),
        (429, b"Too Many Requests"),
        (431, b"Request Header Fields Too Large"),
        (503, b"Service Unavailable"),
    ],
)
def test_standard_statuses_have_their_phrase(code: int, phrase: bytes) -> None:
    assert reason_phrase(code) == phrase


def test_a_status_nobody_defined_is_still_answered() -> None:
    assert reason_phrase(599) == b"Unknown Status"
