"""Why a call is refused before it reaches an executor, in the words Google would use.

``Rejection`` lives here rather than in ``limits`` so that ``models`` can raise
it while authenticating without importing the admission machinery.
"""

from __future__ import annotations

from datetime import datetime

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"

INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."


class Rejection(Exception):
    """A refusal the gateway turns into a Gemini-shaped error.

    ``reason`` is the usage record's outcome; ``details`` are ready-made
    entries for the error body's ``details`` list (ErrorInfo, QuotaFailure,
    RetryInfo), sent as they are.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 429,
        status: str = "RESOURCE_EXHAUSTED",
        reason: str = "rejected_quota",
        retry_after: int | None = None,
        details: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.details = details or []

    def __repr__(self) -> str:
        return f"Rejection({self.http_status} {self.status}: {self.message})"


def error_info(reason: str) -> dict:
    return {"@type": ERROR_INFO, "reason": reason, "domain": "googleapis.com"}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def invalid_key() -> Rejection:
    return Rejection(
        INVALID_KEY_MESSAGE,
        http_status=400,
        status="INVALID_ARGUMENT",
        reason="rejected_auth",
        details=[error_info("API_KEY_INVALID")],
    )


def expired_key(prefix: str, expired_at: datetime) -> Rejection:
    return Rejection(
        f"API key expired. Key {prefix}… expired at {_when(expired_at)}; ask an admin to renew it.",
        http_status=400,
        status="INVALID_ARGUMENT",
        reason="rejected_auth",
        details=[error_info("API_KEY_EXPIRED")],
    )


def revoked_key(prefix: str, revoked_at: datetime | None) -> Rejection:
    when = f" at {_when(revoked_at)}" if revoked_at else ""
    return Rejection(
        f"API key {prefix}… was revoked{when}. Ask an admin for a new key.",
        http_status=403,
        status="PERMISSION_DENIED",
        reason="rejected_auth",
        details=[error_info("API_KEY_REVOKED")],
    )


def disabled_user(prefix: str) -> Rejection:
    return Rejection(
        f"API key {prefix}… belongs to a disabled account.",
        http_status=403,
        status="PERMISSION_DENIED",
        reason="rejected_auth",
        details=[error_info("API_KEY_SERVICE_BLOCKED")],
    )


def ip_not_allowed(prefix: str, client_ip: str) -> Rejection:
    return Rejection(
        f"API key {prefix}… may not be used from IP address {client_ip or 'unknown'}; "
        "it is restricted to an IP allow-list.",
        http_status=403,
        status="PERMISSION_DENIED",
        reason="rejected_auth",
        details=[error_info("API_KEY_IP_ADDRESS_BLOCKED")],
    )


def model_not_allowed(prefix: str, model: str, patterns: tuple[str, ...]) -> Rejection:
    return Rejection(
        f"API key {prefix}… may not use model {model}. Allowed models: {', '.join(patterns)}.",
        http_status=403,
        status="PERMISSION_DENIED",
        reason="rejected_auth",
        details=[error_info("MODEL_NOT_ALLOWED")],
    )


def over_limit(
    *,
    prefix: str,
    limit_id: str,
    description: str,
    size: int,
    reset_at: datetime | None,
    retry_after: int,
    detail: str = "",
) -> Rejection:
    """A 429 naming the limit, its size and when it resets, with Google's QuotaFailure and RetryInfo."""
    resets = f" It resets at {_when(reset_at)} (in {retry_after} s)." if reset_at else f" Retry in {retry_after} s."
    return Rejection(
        f"Quota exceeded for API key {prefix}…: {description}, limit {size}{detail}.{resets}",
        http_status=429,
        status="RESOURCE_EXHAUSTED",
        reason="rejected_quota",
        retry_after=retry_after,
        details=[
            {
                "@type": QUOTA_FAILURE,
                "violations": [
                    {
                        "quotaMetric": f"gemproxy/{limit_id}",
                        "quotaId": limit_id,
                        "quotaValue": str(size),
                    }
                ],
            },
            {"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"},
        ],
    )


def counters_unavailable() -> Rejection:
    return Rejection(
        "The quota service is unavailable; try again shortly.",
        http_status=503,
        status="UNAVAILABLE",
        reason="unavailable",
        retry_after=5,
    )
