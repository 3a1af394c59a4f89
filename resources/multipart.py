"""``uploadType=multipart``: a ``multipart/related`` body of two parts, the File's JSON metadata then its bytes.

Read as a stream: the metadata part is small and bounded; the media part is
handed on in pieces as it is read, so that it goes to storage without being
held whole. Anything malformed raises ``MalformedMultipart`` with words a
curl user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

PIECE = 1024 * 1024
MAX_METADATA_BYTES = 64 * 1024
MAX_HEADER_BYTES = 8 * 1024

_BOUNDARY = re.compile(r"""boundary=(?:"([^"]{1,70})"|([0-9A-Za-z'()+_,\-./:=?]{1,70}))""")


class MalformedMultipart(ValueError):
    pass


def boundary_of(content_type: str) -> str:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "multipart/related":
        raise MalformedMultipart("A multipart upload must be sent as Content-Type: multipart/related; boundary=...")
    found = _BOUNDARY.search(content_type)
    if not found:
        raise MalformedMultipart("The multipart/related Content-Type has no valid boundary.")
    return found.group(1) or found.group(2)


class RelatedParts:
    """The two parts of a ``multipart/related`` body read from ``read`` (a file's ``read``)."""

    def __init__(self, read: Callable[[int], bytes], boundary: str) -> None:
        self._read = read
        self._buffer = b""
        self._eof = False
        self._delimiter = b"\r\n--" + boundary.encode("ascii")

    def metadata(self) -> tuple[dict[str, str], bytes]:
        """The first part's headers and body; call before ``media``."""
        # The body starts with the first delimiter (a preamble before it is allowed, and ignored).
        self._buffer = b"\r\n"
        self._skip_past(self._delimiter, MAX_METADATA_BYTES, "preamble")
        headers = self._headers()
        body = b"".join(self._until_delimiter(MAX_METADATA_BYTES, "metadata part"))
        self._after_delimiter(expect_more=True)
        return headers, body

    def media_headers(self) -> dict[str, str]:
        return self._headers()

    def media(self) -> Iterator[bytes]:
        """The second part's bytes, in pieces; the body must end with the closing delimiter."""
        yield from self._until_delimiter(None, "media part")
        self._after_delimiter(expect_more=False)

    def _fill(self, wanted: int) -> bool:
        while len(self._buffer) < wanted and not self._eof:
            data = self._read(PIECE)
            if not data:
                self._eof = True
            self._buffer += data
        return len(self._buffer) >= wanted

    def _skip_past(self, marker: bytes, limit: int, what: str) -> None:
        for _ in self._until(marker, limit, what):
            pass
        self._buffer = self._buffer[len(marker) :]

    def _until_delimiter(self, limit: int | None, what: str) -> Iterator[bytes]:
        yield from self._until(self._delimiter, limit, what)
        self._buffer = self._buffer[len(self._delimiter) :]

    def _until(self, marker: bytes, limit: int | None, what: str) -> Iterator[bytes]:
        """The bytes before ``marker``, leaving the buffer at it."""
        passed = 0
        while True:
            self._fill(len(marker) + PIECE)
            at = self._buffer.find(marker)
            if at >= 0:
                passed += at
                if limit is not None and passed > limit:
                    raise MalformedMultipart(f"The {what} of the multipart body is larger than {limit} bytes.")
                if at:
                    yield self._buffer[:at]
                self._buffer = self._buffer[at:]
                return
            if self._eof:
                raise MalformedMultipart("The multipart body ends before its closing boundary.")
            # Keep what could be the start of a marker split across reads.
            keep = len(marker) - 1
            out, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
            passed += len(out)
            if limit is not None and passed > limit:
                raise MalformedMultipart(f"The {what} of the multipart body is larger than {limit} bytes.")
            yield out

    def _after_delimiter(self, *, expect_more: bool) -> None:
        self._fill(2)
        tail = self._buffer[:2]
        if not expect_more:
            self._buffer = self._buffer[2:]
        if expect_more and tail != b"\r\n":
            raise MalformedMultipart("A multipart upload has two parts: the metadata (JSON), then the media.")
        if not expect_more and tail != b"--":
            raise MalformedMultipart("A multipart upload has exactly two parts: the metadata, then the media.")

    def _headers(self) -> dict[str, str]:
        # At the CRLF that ends a delimiter's line: header lines, each after a CRLF, then an empty line.
        self._fill(2)
        if self._buffer[:2] != b"\r\n":
            raise MalformedMultipart("A boundary line of the multipart body is followed by other text.")
        block = b"".join(self._until(b"\r\n\r\n", MAX_HEADER_BYTES, "part headers"))
        self._buffer = self._buffer[4:]
        headers: dict[str, str] = {}
        for line in block.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise MalformedMultipart("A part of the multipart body has a malformed header line.")
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        return headers
