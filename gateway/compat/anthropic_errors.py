"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``, typed by status."""

from __future__ import annotations

# Anthropic's error types, by HTTP status, as its API answers them.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES.values())


def error_type(status: int, kind: str | None = None) -> str:
    if kind in KNOWN_ERROR_TYPES:
        return kind
    if status == 503:
        # Gemini's UNAVAILABLE is what Anthropic calls overloaded (its 529).
        return "overloaded_error"
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str, kind: str | None = None) -> dict:
    return {"type": "error", "error": {"type": error_type(status, kind), "message": message}}
