"""The durable queue of usage records in embedded mode: an append-only journal in the data directory.

A call's record is appended to this process's journal (one ``os.write`` of one
JSON line on an ``O_APPEND`` descriptor) before its answer completes, and the
call goes on at once. There is no fsync: the line is in the kernel's page
cache when ``write`` returns, so a SIGKILLed process has lost nothing; a
power loss may lose the last seconds, as the Redis stream without AOF would.

The writer thread drains the journal on its usual interval. It first closes
the open segment and starts a new one (``<name>.<seq>.jsonl``), then writes the
closed segment's records in batches, and deletes the segment once the database
holds all of them. A process that dies at any point leaves its segments on
disk; the writer of the next process to start in that data directory writes
them before its own. A record written but not yet forgotten (the process died
between the commit and the unlink) is written again, and left out then: its
``record_id`` is unique in the table.

Each process's journal is guarded by its lock file ``<name>.lock``, held with
``flock`` for the process's life: another process takes over segments only
once it can lock their owner's file, i.e. once the owner is gone. So two live
processes sharing a data directory each write their own journal.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from accounts.usage_event import UsageEvent, decode, encode

logger = logging.getLogger(__name__)

# (segment, offset just past the entry's line): what ``done`` is given back.
EntryId = tuple["Segment", int]


@dataclass(eq=False)
class Segment:
    """A closed journal file waiting to be written, read from ``written_up_to`` on."""

    path: Path
    owner: str
    lines: int  # entries in it, for ``depth``
    written_up_to: int = 0  # bytes
    lines_written: int = 0
    file: BinaryIO | None = None


class JournalUsageQueue:
    errors: tuple[type[Exception], ...] = (OSError,)

    def __init__(self, directory: Path, name: str | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.description = f"the usage journal in {directory}"
        self._lock_fd = self._create_lock(self.name)
        # Held around each append and the switch to a new segment: a line is never written to a closed one.
        self._append_lock = threading.Lock()
        self._seq = 0
        self._fd = self._open_segment()
        self._appended = 0  # lines in the open segment
        self._segments: deque[Segment] = deque()  # closed, oldest first: dead processes' first, then ours
        self._owner_locks: dict[str, int] = {}  # dead owners whose segments we write: their lock, held meanwhile

    def _path(self, owner: str, seq: int) -> Path:
        return self.directory / f"{owner}.{seq:08d}.jsonl"

    def _create_lock(self, name: str) -> int:
        # Locked before it has its final name, so no other process can take it for a dead one's.
        final = self.directory / f"{name}.lock"
        unfinished = self.directory / f"{name}.lock-new"
        fd = os.open(unfinished, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(unfinished, final)
        return fd

    def _open_segment(self) -> int:
        self._seq += 1
        return os.open(self._path(self.name, self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def append(self, event: UsageEvent) -> None:
        """Append the record to the journal; raises OSError (a full disk) if the kernel does not take it.

        Synchronous inside: a write to the page cache takes microseconds, less than a thread hop.
        """
        self.append_at_once(event)

    def append_at_once(self, event: UsageEvent) -> bool:
        """``append`` for synchronous callers: always possible here."""
        line = encode(event) + b"\n"
        with self._append_lock:
            written = os.write(self._fd, line)
            if written != len(line):
                os.write(self._fd, b"\n")  # end the torn line, so that the next one reads whole
                raise OSError(f"usage journal: {written} of {len(line)} bytes written")
            self._appended += 1
        return True

    def _close_open_segment(self) -> bool:
        """Start a new segment and queue the current one for writing, if it holds anything."""
        with self._append_lock:
            if not self._appended:
                return False
            full, path, lines = self._fd, self._path(self.name, self._seq), self._appended
            self._fd, self._appended = self._open_segment(), 0
        os.close(full)
        self._segments.append(Segment(path, self.name, lines))
        return True

    def _take_over_dead_journals(self) -> None:
        """Queue the segments of every process that left its journal here and is gone."""
        for lock_path in sorted(self.directory.glob("*.lock")):
            owner = lock_path.name.removesuffix(".lock")
            if owner == self.name or owner in self._owner_locks:
                continue
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another process took it over and finished meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its owner is alive, or another process is writing it
                continue
            segments = sorted(self.directory.glob(f"{owner}.*.jsonl"))
            self._owner_locks[owner] = fd
            for path in segments:
                self._segments.append(Segment(path, owner, _count_lines(path)))
            if segments:
                logger.warning("usage journal: writing %d segments left by %s", len(segments), owner)
            else:
                self._release_owner(owner)

    def _release_owner(self, owner: str) -> None:
        fd = self._owner_locks.pop(owner)
        (self.directory / f"{owner}.lock").unlink(missing_ok=True)
        os.close(fd)

    def take(self, count: int) -> list[tuple[EntryId, UsageEvent | None]]:
        """Up to ``count`` entries not yet written, oldest first: (entry id, event, or None if unreadable).

        Entries taken and not ``done`` are taken again next time.
        """
        self._forget_written()  # empty ones too, which no ``done`` would ever clear
        if not self._segments:
            self._take_over_dead_journals()
        taken: list[tuple[EntryId, UsageEvent | None]] = []
        for segment in self._segments:
            _read(segment, taken, count)
        # Room left: what was appended up to now comes too. Not otherwise, so that a database
        # outage (nothing done, the same entries taken again each second) does not pile up segments.
        if len(taken) < count and self._close_open_segment():
            _read(self._segments[-1], taken, count)
        return taken

    def done(self, entry_ids: list[EntryId]) -> None:
        """The database holds (or refused for good) these entries' records: forget them."""
        for segment, offset in entry_ids:
            segment.written_up_to = max(segment.written_up_to, offset)
            segment.lines_written += 1
        self._forget_written()

    def _forget_written(self) -> None:
        while self._segments and self._fully_written(self._segments[0]):
            self._forget(self._segments.popleft())

    def _fully_written(self, segment: Segment) -> bool:
        try:
            return segment.written_up_to >= segment.path.stat().st_size
        except FileNotFoundError:
            return True

    def _forget(self, segment: Segment) -> None:
        if segment.file is not None:
            segment.file.close()
        segment.path.unlink(missing_ok=True)
        if segment.owner != self.name and not any(other.owner == segment.owner for other in self._segments):
            self._release_owner(segment.owner)

    def depth(self) -> int:
        """Records in this process's journal (and in dead ones' it is writing) not yet written."""
        # A copy (taken at once, under the GIL): the writer thread may change the deque meanwhile.
        return self._appended + sum(segment.lines - segment.lines_written for segment in tuple(self._segments))

    def depth_in_process(self) -> int:
        return self.depth()  # this process's journal, and dead ones' it took over

    def close(self) -> None:
        """Let go of the journal: an empty one is removed, records still in it wait for the next process."""
        with self._append_lock:
            if self._fd < 0:
                return  # closed already
            os.close(self._fd)
            self._fd = -1  # a late append fails (and stays in memory) rather than write to a reused descriptor
            if not self._appended:
                self._path(self.name, self._seq).unlink(missing_ok=True)
        for segment in self._segments:
            if segment.file is not None:
                segment.file.close()
        for owner in list(self._owner_locks):
            os.close(self._owner_locks.pop(owner))
        if not self._appended and not any(segment.owner == self.name for segment in self._segments):
            (self.directory / f"{self.name}.lock").unlink(missing_ok=True)
        os.close(self._lock_fd)


def _read(segment: Segment, taken: list[tuple[EntryId, UsageEvent | None]], count: int) -> None:
    """Add the segment's entries not yet written to ``taken``, until it holds ``count``."""
    if len(taken) >= count:
        return
    if segment.file is None:
        segment.file = open(segment.path, "rb")  # kept open until the segment is written
    # Where each line ends, counted rather than asked with tell(): a system call per record.
    position = segment.file.seek(segment.written_up_to)
    while len(taken) < count and (line := segment.file.readline()):
        position += len(line)
        taken.append(((segment, position), _event(line, segment)))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def _event(line: bytes, segment: Segment) -> UsageEvent | None:
    if not line.endswith(b"\n"):
        logger.error("usage journal: %s ends with a torn line; dropped", segment.path)
        return None
    try:
        return decode(line)
    except (ValueError, TypeError, KeyError) as error:
        logger.error("usage journal: a line of %s is not a usage record (%s); dropped", segment.path, error)
        return None
