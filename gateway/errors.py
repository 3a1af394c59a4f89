"""Errors in the shape Google's API uses: ``{"error": {"code", "message", "status", "details"}}``."""

from __future__ import annotations

import json

from django.http import HttpResponse

from accounts.rejections import Rejection


class ApiError(Exception):
    """Raised anywhere on the request path; the view turns it into a Gemini-shaped answer."""

    def __init__(
        self,
        http_status: int,
        status: str,
        message: str,
        *,
        details: list[dict] | None = None,
        outcome: str = "bad_request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.message = message
        self.details = details
        self.outcome = outcome  # the usage record's outcome
        self.headers = headers or {}

    @classmethod
    def from_rejection(cls, rejection: Rejection) -> ApiError:
        """A refusal by the key's rules or limits, with Google's details and Retry-After."""
        headers = {"Retry-After": str(rejection.retry_after)} if rejection.retry_after else {}
        return cls(
            rejection.http_status,
            rejection.status,
            rejection.message,
            details=rejection.details,
            outcome=rejection.reason,
            headers=headers,
        )

    def body(self) -> dict:
        error: dict = {"code": self.http_status, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def compact(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()

    def response(self) -> HttpResponse:
        # Google pretty-prints its error bodies; clients only need valid JSON.
        response = HttpResponse(
            json.dumps(self.body(), indent=2), status=self.http_status, content_type="application/json; charset=UTF-8"
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def internal_error() -> ApiError:
    return ApiError(500, "INTERNAL", "An internal error occurred in the gateway.", outcome="gateway_error")


def missing_api_key() -> ApiError:
    return ApiError(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
        outcome="rejected_auth",
    )
