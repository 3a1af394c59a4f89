"""Reading the members' page as a member sees it: what remains of each key's limits."""

from __future__ import annotations

import re

_KEY = re.compile(r'<article class="card key" data-key="([^"]+)">(.*?)</article>', re.DOTALL)
_CELL = re.compile(r'<div class="counter" data-limit="(\w+)"([^>]*)>(.*?)</span>\s*</div>', re.DOTALL)
_LEFT = re.compile(r'class="counter-value[^"]*">([\d,]+) <span class="counter-of">left</span>')
_OF = re.compile(r"[\d,]+ of ([\d,]+) (?:used|in flight)")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def quota_shown(page: str) -> dict[str, dict[str, tuple[int, int] | str]]:
    """{key prefix: {limit: (remaining, size)}, or the cell's words where the counters could not be read}."""
    shown: dict[str, dict[str, tuple[int, int] | str]] = {}
    for prefix, body in _KEY.findall(page):
        cells: dict[str, tuple[int, int] | str] = {}
        for name, _attributes, cell in _CELL.findall(body):
            left, size = _LEFT.search(cell), _OF.search(cell)
            if left and size:
                cells[name] = (_number(left[1]), _number(size[1]))
            else:
                cells[name] = " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        shown[prefix] = cells
    return shown
