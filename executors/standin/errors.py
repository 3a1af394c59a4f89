"""Google's error bodies, and the errors the #error directive asks for."""

from __future__ import annotations

from typing import Any

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}


class GoogleError(Exception):
    """Raised by handlers; the middleware answers it as Google's error body."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


RATE_LIMITS_DOC = "https://ai.google.dev/gemini-api/docs/rate-limits"
FREE_TIER_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"


def free_tier_quota_error(model_id: str, limit: int, retry_in: float) -> GoogleError:
    """Google's free-tier 429, word for word: the message ends "Please retry in 36.962214405s."

    ``RetryInfo.retryDelay`` holds whole seconds (rounded down), the message the exact time.
    """
    retry_in = max(0.0, retry_in)
    exact = f"{retry_in:.9f}".rstrip("0").rstrip(".")
    return GoogleError(
        429,
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {RATE_LIMITS_DOC}. "
        "To monitor your current usage, head to: https://ai.dev/rate-limit. \n"
        f"* Quota exceeded for metric: {FREE_TIER_METRIC}, limit: {limit}, model: {model_id}\n"
        f"Please retry in {exact}s.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_DOC}],
            },
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": FREE_TIER_METRIC,
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model_id},
                        "quotaValue": str(limit),
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(retry_in)}s"},
        ],
    )


# What #error=429 answers when no #retry-delay says otherwise.
DEFAULT_RETRY_DELAY = 7.2


def directive_error(code: int, model_id: str, retry_delay: float | None = None) -> GoogleError:
    if code == 429:
        return free_tier_quota_error(model_id, 10, DEFAULT_RETRY_DELAY if retry_delay is None else retry_delay)
    return GoogleError(code, _DEFAULT_MESSAGES.get(code, f"Fake error {code} requested by #error."))
