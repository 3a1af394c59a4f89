"""What a client says about a file it uploads, checked: ``{"file": {...}}`` and the ``X-Goog-Upload-Header-*``.

Both spellings are accepted at once (Python sends ``display_name`` and an
integer ``size_bytes``, JS ``displayName`` and a string ``sizeBytes``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings

from gateway.errors import invalid_argument
from resources.upload_records import FileFields

# type "/" subtype, with parameters: what a Content-Type may be, bounded.
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
# A bare token too: Google's own batch guide uploads its JSONL input with mime_type="jsonl", and Google takes it.
_MIME_TYPE = re.compile(rf"{_TOKEN}(?:/{_TOKEN})?(?:\s*;[\x20-\x7e]*)?")
# Google's file ids: up to 40 lowercase letters, digits and dashes, no dash at either end.
_FILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]{1,19}")
MAX_DISPLAY_NAME = 512


def _field(metadata: dict, camel: str, snake: str) -> Any:
    return metadata.get(camel, metadata.get(snake))


def parse_metadata(body: bytes) -> dict:
    """The ``file`` object of a create body (``{}`` when there is none)."""
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as error:
        raise invalid_argument(f"Invalid JSON payload received. {error}.") from None
    if not isinstance(parsed, dict):
        raise invalid_argument("Invalid JSON payload received. The request body must be a JSON object.")
    metadata = parsed.get("file", {})
    if not isinstance(metadata, dict):
        raise invalid_argument('Invalid JSON payload received. "file" must be an object.')
    return metadata


def _size(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        raise invalid_argument(f"Invalid value at '{where}' (TYPE_INT64), {json.dumps(value)[:80]}")
    size = int(value)
    if size < 0:
        raise invalid_argument(f"Invalid value at '{where}': the size must not be negative.")
    if size > settings.GEMPROXY_MAX_FILE_BYTES:
        raise invalid_argument(
            f"The file is {size} bytes; files may be at most {settings.GEMPROXY_MAX_FILE_BYTES} bytes."
        )
    return size


def _mime_type(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 255 or not _MIME_TYPE.fullmatch(value.strip()):
        raise invalid_argument(f"Invalid MIME type: {json.dumps(value)[:80]}")
    return value.strip()


def file_fields(
    metadata: dict, *, header_size: str | None, header_type: str | None, fallback_type: str = ""
) -> FileFields:
    """The new file's fields from its metadata and upload headers; the headers win, and must agree with it."""
    display_name = _field(metadata, "displayName", "display_name")
    if display_name is None:
        display_name = ""
    if not isinstance(display_name, str):
        raise invalid_argument("Invalid value at 'file.display_name' (TYPE_STRING).")
    if len(display_name) > MAX_DISPLAY_NAME or "\x00" in display_name:
        raise invalid_argument(f"The display name must be at most {MAX_DISPLAY_NAME} characters, without NUL.")

    declared = _size(header_size, "X-Goog-Upload-Header-Content-Length")
    in_metadata = _size(_field(metadata, "sizeBytes", "size_bytes"), "file.size_bytes")
    if declared is not None and in_metadata is not None and declared != in_metadata:
        raise invalid_argument(
            f"The upload declares {declared} bytes (X-Goog-Upload-Header-Content-Length) "
            f"but the file's sizeBytes is {in_metadata}."
        )
    size = declared if declared is not None else in_metadata

    mime_type = _mime_type(header_type) or _mime_type(_field(metadata, "mimeType", "mime_type")) or fallback_type
    if not mime_type:
        raise invalid_argument("The file's MIME type is missing: set X-Goog-Upload-Header-Content-Type or mimeType.")

    name = _field(metadata, "name", "name") or ""
    if not isinstance(name, str):
        raise invalid_argument("Invalid value at 'file.name' (TYPE_STRING).")
    file_id = name.removeprefix("files/")
    if file_id and not _FILE_ID.fullmatch(file_id):
        raise invalid_argument(
            f"Invalid file name {name[:60]!r}: up to 40 lowercase letters, digits or dashes, "
            "not starting or ending with a dash."
        )
    return FileFields(display_name=display_name, mime_type=mime_type, size=size, file_id=file_id)
