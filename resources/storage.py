"""The bytes of files, in Django's default storage (``STORAGES["default"]``): a folder, or an S3-compatible store.

Everything here is synchronous (the storage API is) and streams: a body is
read and written in ``PIECE`` sized reads, hashed on the way, never held whole.
Async callers run these in a worker thread (``asyncio.to_thread``) so that a
slow disk or bucket does not hold the process's one shared ORM thread.

A resumable upload arrives in chunks over many requests, possibly to several
gateway processes, and the storage API cannot append: each chunk is stored as
a part of its own, and the parts are joined into the file's one object when
the upload is finalised (one pass, which also computes the sha256).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage

PIECE = 1024 * 1024


class TooLarge(Exception):
    """The body went past the bytes it may have; nothing of it is kept."""


@dataclass(frozen=True)
class Written:
    storage_name: str
    size: int
    sha256: str  # hex digest


class _Metered(io.RawIOBase):
    """A reader over ``source`` that hashes and counts what passes, and stops past ``limit`` bytes."""

    def __init__(self, source: Iterable[bytes] | io.IOBase, limit: int | None) -> None:
        self._pieces = _pieces_of(source)
        self._pending = b""
        self.limit = limit
        self.size = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # Read once, from its start: storages then stream it (S3's transfer in parts, never sizing it first).
        return False

    def readinto(self, buffer) -> int:
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._pending = piece
        count = min(len(buffer), len(self._pending))
        taken, self._pending = self._pending[:count], self._pending[count:]
        self.size += count
        if self.limit is not None and self.size > self.limit:
            raise TooLarge(self.size)
        self.digest.update(taken)
        buffer[:count] = taken
        return count


def _pieces_of(source: Iterable[bytes] | io.IOBase) -> Iterator[bytes]:
    if isinstance(source, io.IOBase) or hasattr(source, "read"):
        read = source.read
        while piece := read(PIECE):
            yield piece
    else:
        yield from source


def new_file_name() -> str:
    """A name for a file's bytes that no other write uses, as ``save`` needs."""
    return f"files/{secrets.token_hex(16)}"


def save(name: str, source: Iterable[bytes] | io.IOBase, *, limit: int | None = None) -> Written:
    """Store ``source`` (a readable or an iterable of bytes) under ``name``; raises ``TooLarge`` past ``limit``.

    The storage may choose another name (it never overwrites): the one returned is the one to keep.
    """
    metered = _Metered(source, limit)
    try:
        stored_name = default_storage.save(name, File(io.BufferedReader(metered, PIECE), name=name))
    except BaseException:
        # Too large, a malformed body, a client gone: a filesystem storage leaves the partial file behind.
        # Callers choose names no one else uses, so the name is that partial file's.
        _delete_quietly(name)
        raise
    return Written(stored_name, metered.size, metered.digest.hexdigest())


def read(storage_name: str, piece: int = PIECE) -> Iterator[bytes]:
    """The stored bytes, in pieces of at most ``piece`` bytes."""
    with default_storage.open(storage_name, "rb") as stored:
        while data := stored.read(piece):
            yield data


def joined(storage_names: Iterable[str]) -> Iterator[bytes]:
    for storage_name in storage_names:
        yield from read(storage_name)


def delete(storage_name: str) -> None:
    if storage_name:
        _delete_quietly(storage_name)


def _delete_quietly(storage_name: str) -> None:
    try:
        default_storage.delete(storage_name)
    except FileNotFoundError:
        pass


async def aopen(storage_name: str) -> Any:
    """The stored file, opened for reading in a worker thread: a missing object fails here, before any answer."""
    return await asyncio.to_thread(default_storage.open, storage_name, "rb")


async def aread(handle: Any, piece: int = PIECE) -> AsyncIterator[bytes]:
    """An opened file's bytes for async code: each read in a worker thread, closed however the reader stops."""
    try:
        while data := await asyncio.to_thread(handle.read, piece):
            yield data
    finally:
        await asyncio.to_thread(handle.close)
