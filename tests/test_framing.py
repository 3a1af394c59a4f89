"""The gateway relays whole events only, and frames late errors as Google does."""

from __future__ import annotations

import json

from gateway.errors import ApiError
from gateway.framing import JsonArrayFraming, SseFraming, UsageTracker

LATE_ERROR = ApiError(503, "UNAVAILABLE", "The executor serving this request disconnected.")


def test_sse_holds_back_half_an_event_until_it_is_complete() -> None:
    framing = SseFraming()

    assert framing.feed(b'data: {"a": 1}\r\n\r\ndata: {"b"') == b'data: {"a": 1}\r\n\r\n'
    assert framing.feed(b": 2}\r\n\r\n") == b'data: {"b": 2}\r\n\r\n'


def test_sse_error_after_half_an_event_drops_the_half_and_writes_bare_json() -> None:
    framing = SseFraming()
    framing.feed(b'data: {"a": 1}\r\n\r\ndata: {"cut')

    written = framing.error(LATE_ERROR)

    assert written.startswith(b'{"error":')
    assert json.loads(written) == {
        "error": {"code": 503, "message": "The executor serving this request disconnected.", "status": "UNAVAILABLE"}
    }


def test_sse_terminates_an_unterminated_last_event() -> None:
    framing = SseFraming()
    framing.feed(b'data: {"last": true}')

    assert framing.finish() == b'data: {"last": true}\r\n\r\n'


def test_json_array_error_before_anything_is_a_one_element_array() -> None:
    assert json.loads(JsonArrayFraming().error(LATE_ERROR)) == [LATE_ERROR.body()]


def test_json_array_error_after_elements_is_appended_as_the_last_element() -> None:
    framing = JsonArrayFraming()
    sent = framing.feed(b'[{"candidates": []}\r\n')

    document = json.loads(sent + framing.error(LATE_ERROR))

    assert document == [{"candidates": []}, LATE_ERROR.body()]


def test_usage_tracker_reads_the_last_usage_metadata_even_when_split_across_chunks() -> None:
    tracker = UsageTracker()
    body = (
        b'data: {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}}\r\n\r\n'
        b'data: {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9,'
        b' "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}}\r\n\r\n'
    )
    for start in range(0, len(body), 7):
        tracker.feed(body[start : start + 7])

    assert tracker.usage()["candidatesTokenCount"] == 9
    assert tracker.usage()["promptTokensDetails"][0]["tokenCount"] == 3


def test_usage_tracker_reads_usage_whose_strings_hold_braces_and_ignores_a_cut_off_one() -> None:
    tracker = UsageTracker()
    tracker.feed(b'{"usageMetadata": {"trafficType": "ON_DEMAND }{", "totalTokenCount": 12}, "modelVersion": "x"}')
    assert tracker.usage() == {"trafficType": "ON_DEMAND }{", "totalTokenCount": 12}

    cut = UsageTracker()
    cut.feed(b'{"usageMetadata": {"promptTokenCount": 3, "candidatesTok')
    assert cut.usage() == {}


def test_usage_tracker_without_usage_is_empty() -> None:
    tracker = UsageTracker()
    tracker.feed(b'{"embedding": {"values": [1, 2]}}')

    assert tracker.usage() == {}
