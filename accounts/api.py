"""``/api/v1/me``: a member's keys and usage for scripts, by session or by the proxy key itself."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import reports
from accounts.authentication import ProxyKeyAuthentication
from accounts.models import UsageRecord
from accounts.reports import Period
from accounts.selfservice import KeySummary, key_summaries

MAX_DAYS = 366
MAX_RECENT = 100


def me_api(view):
    """A read-only endpoint for the member behind the session or the key; never anyone else's data."""
    view = permission_classes([IsAuthenticated])(view)
    view = authentication_classes([ProxyKeyAuthentication, SessionAuthentication])(view)
    return api_view(["GET"])(view)


def _bounded(value: str | None, default: int, maximum: int) -> int:
    try:
        return max(1, min(int(value), maximum)) if value else default
    except ValueError:
        return default


def _key(summary: KeySummary) -> dict:
    key = summary.key
    return {
        "id": key.pk,
        "name": key.name,
        "key": key.masked,
        "status": key.status,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "allowed_models": summary.models,
        "ip_allowlist": summary.networks,
        "limits": {
            limit.name: {
                "limit": limit.size,
                "used": limit.used,
                "remaining": limit.remaining,
                "resets_in_seconds": limit.resets_in,
            }
            for limit in summary.limits
        },
    }


@me_api
def my_keys(request: Request) -> Response:
    return Response({"keys": [_key(summary) for summary in key_summaries(request.user)]})


@me_api
def my_usage(request: Request) -> Response:
    period = Period.last_days(_bounded(request.query_params.get("days"), 30, MAX_DAYS))
    days = reports.daily(period, user_id=request.user.pk)
    recent = UsageRecord.objects.filter(user=request.user).select_related("key")
    return Response(
        {
            "from": period.first,
            "to": period.last,
            "totals": reports.totals(days),
            "days": [{"date": day.day, "requests": day.requests, "tokens": day.tokens, **day.by_group} for day in days],
            "models": [
                {key: row[key] for key in ("model", "requests", "tokens", "failed", "rejected")}
                for row in reports.top_models(period, limit=50, user_id=request.user.pk)
            ],
            "recent": [
                {
                    "time": record.created_at,
                    "key": record.key.masked if record.key else None,
                    "model": record.model,
                    "method": record.method,
                    "streamed": record.streamed,
                    "outcome": record.outcome,
                    "status_code": record.status_code,
                    "prompt_tokens": record.prompt_tokens,
                    "candidates_tokens": record.candidates_tokens,
                    "thoughts_tokens": record.thoughts_tokens,
                    "cached_tokens": record.cached_tokens,
                    "latency_ms": record.latency_ms,
                }
                for record in recent[: _bounded(request.query_params.get("recent"), 20, MAX_RECENT)]
            ],
        }
    )
