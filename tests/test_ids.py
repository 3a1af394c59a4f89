"""The ids the relay makes per call: 32 hex digits, as uuid4().hex gave, and never the same twice."""

from __future__ import annotations

import re

from gemproxy_site.ids import new_id


def test_ids_are_32_hex_digits_and_distinct() -> None:
    ids = [new_id() for _ in range(10_000)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in ids)
    assert len(set(ids)) == len(ids)
