"""What ``previous_response_id`` continues: each stored response's Gemini conversation, per owner.

The first version keeps them in the process, bounded in count, size and age
(``BoundedResponseStore``): a response is found again only by the gateway
process that served it, and not after a restart. That is enough for one
Daphne process (the embedded deployment) and for clients that send whole
conversations (Codex CLI sends ``store: false`` and its full input). A
shared store (Redis or a table) only has to implement ``ResponseStore``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol


@dataclass(frozen=True)
class StoredResponse:
    contents: tuple[dict, ...]  # the Gemini contents sent, then the answer's model turn
    call_names: Mapping[str, str]  # call_id -> function name, for function_call_output items to come
    size: int = 0  # the JSON length of contents, what the store counts against its budget

    @classmethod
    def of(cls, sent: list[dict], answer_content: dict, call_names: Mapping[str, str]) -> StoredResponse:
        contents = (*sent, answer_content) if answer_content.get("parts") else tuple(sent)
        # A copy through JSON: later changes to the caller's dicts cannot reach the stored turn.
        text = json.dumps(contents, ensure_ascii=False, separators=(",", ":"))
        return cls(tuple(json.loads(text)), dict(call_names), len(text))


class ResponseStore(Protocol):
    def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    def put(self, owner: str, response_id: str, stored: StoredResponse) -> None: ...


class BoundedResponseStore:
    """The most recent responses, least recently used dropped first, each kept at most ``max_age`` seconds."""

    def __init__(
        self,
        max_entries: int = 1000,
        max_total_size: int = 64 * 1024 * 1024,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_total_size = max_total_size
        self.max_age = max_age
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, StoredResponse]] = OrderedDict()
        self._total = 0
        # Daphne runs async views on one thread, but sync code may share the store from a thread pool.
        self._lock = threading.Lock()

    def get(self, owner: str, response_id: str) -> StoredResponse | None:
        with self._lock:
            entry = self._entries.get((owner, response_id))
            if entry is None:
                return None
            if self.clock() - entry[0] > self.max_age:
                self._drop((owner, response_id))
                return None
            self._entries.move_to_end((owner, response_id))
            return entry[1]

    def put(self, owner: str, response_id: str, stored: StoredResponse) -> None:
        if stored.size > self.max_total_size:
            return
        with self._lock:
            self._drop((owner, response_id))
            self._entries[(owner, response_id)] = (self.clock(), stored)
            self._total += stored.size
            while len(self._entries) > self.max_entries or self._total > self.max_total_size:
                self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._total -= entry[1].size


@cache
def default_store() -> BoundedResponseStore:
    """The process's one store."""
    return BoundedResponseStore()
