"""Typed reads of a foreign request body: each wrong shape is a SurfaceError naming the field.

The body is parsed JSON the client wrote, so any value may have any type.
``bool`` is a subclass of ``int`` in Python; numbers here refuse it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.compat.surface import SurfaceError

# Far above what any client sends; below what could make a translation slow.
MAX_ITEMS = 10_000


def refuse(message: str, param: str | None = None) -> SurfaceError:
    return SurfaceError(400, message, "invalid_request_error", param)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def required(body: dict, key: str, where: str = "") -> Any:
    if key not in body or body[key] is None:
        raise refuse(f"{where}{key}: Field required", f"{where}{key}")
    return body[key]


def string(value: Any, name: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise refuse(f"{name}: Input should be a valid string, not {type_name(value)}", name)
    if not allow_empty and not value:
        raise refuse(f"{name}: String should have at least 1 character", name)
    return value


def mapping(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise refuse(f"{name}: Input should be an object, not {type_name(value)}", name)
    return value


def array(value: Any, name: str, *, allow_empty: bool = True) -> list:
    if not isinstance(value, list):
        raise refuse(f"{name}: Input should be a valid list, not {type_name(value)}", name)
    if not allow_empty and not value:
        raise refuse(f"{name}: List should have at least 1 item", name)
    if len(value) > MAX_ITEMS:
        raise refuse(f"{name}: List should have at most {MAX_ITEMS} items", name)
    return value


def integer(value: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse(f"{name}: Input should be a valid integer, not {type_name(value)}", name)
    if minimum is not None and value < minimum:
        raise refuse(f"{name}: Input should be greater than or equal to {minimum}", name)
    return value


def number(value: Any, name: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise refuse(f"{name}: Input should be a valid number, not {type_name(value)}", name)
    if not low <= value <= high:
        raise refuse(f"{name}: Input should be between {low:g} and {high:g}", name)
    return value


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise refuse(f"{name}: Input should be a valid boolean, not {type_name(value)}", name)
    return value


def json_object_text(text: str, name: str) -> dict:
    """Tool-call arguments arrive as JSON text; Gemini wants the object."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise refuse(f"{name}: not valid JSON ({exc.msg})", name) from None
    if not isinstance(value, dict):
        raise refuse(f"{name}: should encode a JSON object, not {type_name(value)}", name)
    return value


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
