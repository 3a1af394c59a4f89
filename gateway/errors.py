"""Errors in the shape Google's API uses: ``{"error": {"code", "message", "status", "details"}}``."""

from __future__ import annotations

import json

from django.http import HttpResponse

from accounts.rejections import QUOTA_FAILURE, RETRY_INFO, Rejection
from executors.dispatcher import CoolingDown, DispatchError


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

    @classmethod
    def from_dispatch(cls, error: DispatchError) -> ApiError:
        """A failure on our side of the upstream (no executor, a timeout, every account cooling down)."""
        if isinstance(error, CoolingDown):
            return quota_exhausted(error.model, error.seconds, error.retry_after)
        return cls(error.http_status, error.status, error.message, outcome=error.outcome)

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


def backend_unavailable() -> ApiError:
    """Redis or the database is down: the client is told to come back, promptly."""
    return ApiError(
        503,
        "UNAVAILABLE",
        "A service the gateway depends on is unavailable; try again shortly.",
        outcome="unavailable",
        headers={"Retry-After": "5"},
    )


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def check_method(request, methods: tuple[str, ...]) -> None:
    """Raise Google's 405, with ``Allow``, for a method outside ``methods`` (none named: any method)."""
    if methods and request.method not in methods:
        allowed = ", ".join(methods)
        raise ApiError(
            405,
            "INVALID_ARGUMENT",
            f"Method {request.method} is not allowed on {request.path}; use {allowed}.",
            headers={"Allow": allowed},
        )


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


def quota_exhausted(model: str, seconds: float, retry_after: int) -> ApiError:
    """Every executor account that could serve ``model`` is cooling down after the upstream's 429.

    Worded and shaped as Google's free-tier 429, so that SDKs and tools back
    off as they would with Google; ``Retry-After`` and ``RetryInfo`` say when
    the first account is free again (rounded up: earlier would be refused).
    """
    name = model or "this model"
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. \n"
        f"* Quota exceeded on every executor account of this gateway, model: {name}\n"
        f"Please retry in {max(seconds, 0.1):.1f}s.",
        details=[
            {
                "@type": QUOTA_FAILURE,
                "violations": [
                    {
                        "quotaMetric": "gemproxy/executor_account_requests",
                        "quotaId": "EveryExecutorAccountCoolingDown",
                        "quotaDimensions": {"model": name},
                    }
                ],
            },
            {"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"},
        ],
        outcome="upstream_error",
        headers={"Retry-After": str(retry_after)},
    )
