"""The DRF side of the stateful API: what gemproxy answers from its own database, in Google's exact shapes.

Files get/list/delete, cachedContents get/list/patch/delete and batches list
are quick reads and writes of gemproxy's tables, so they are DRF views
(``GoogleResourceView``); whatever must reach an upstream stays an async view
on the relay path. Everything here speaks Google's dialect:

- authentication by proxy key, as every Gemini route (header, ``?key=`` or
  Bearer), with the key's rules (revoked, expired, IP allow-list);
- every error, DRF's own included, as ``{"error": {"code", "message", "status"}}``
  through one exception handler;
- lists paged with ``pageSize`` and an opaque ``pageToken`` answered as
  ``nextPageToken`` (``Paging``);
- int64 fields as strings and timestamps as RFC 3339 in UTC with a ``Z``
  (``int64``, ``timestamp``), as Google's JSON mapping writes them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ProxyKeyAuthentication, secret_from
from accounts.models import ProxyKey
from gateway.answer_headers import mark_api_answer, preflight
from gateway.errors import ApiError, invalid_argument, missing_api_key

# DRF's exception classes, by the status Google would name.
_STATUS_OF_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
}


def int64(value: int) -> str:
    """Google's JSON writes int64 and uint64 as strings."""
    return str(int(value))


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a Z, as Google writes ``google.protobuf.Timestamp``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def google_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every error of a ``GoogleResourceView`` in Google's shape; unexpected ones stay 500s (logged by DRF)."""
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, exceptions.NotAuthenticated):
        error = missing_api_key()
    elif isinstance(exc, exceptions.AuthenticationFailed):
        # What Google answers for a key it does not know.
        error = ApiError(400, "INVALID_ARGUMENT", str(exc.detail), outcome="rejected_auth")
    elif isinstance(exc, exceptions.APIException):
        code = exc.status_code
        error = ApiError(code, _STATUS_OF_HTTP.get(code, "INVALID_ARGUMENT"), _flatten(exc.detail))
    else:
        return None
    response = Response(error.body(), status=error.http_status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {_flatten(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


class _JsonOnly(BaseContentNegotiation):
    """Google answers JSON whatever ``Accept`` says; DRF would answer 406 to ``Accept: text/html``."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _CompactJson(JSONRenderer):
    charset = "UTF-8"


class _RequireProxyKey(ProxyKeyAuthentication):
    def authenticate(self, request: Request):
        if not secret_from(request._request):
            raise exceptions.NotAuthenticated()
        return super().authenticate(request)


class GoogleResourceView(APIView):
    """A DRF view of the stateful API: proxy-key auth, JSON in and out, Google's errors.

    ``self.key`` is the caller's ``ProxyKey`` and ``self.member`` its owner:
    querysets must be filtered by ``member`` (``owned``), so that another
    member's resource is as absent as one that never existed.
    """

    authentication_classes = [_RequireProxyKey]
    permission_classes: list = []
    parser_classes = [JSONParser]
    renderer_classes = [_CompactJson]
    content_negotiation_class = _JsonOnly

    def get_exception_handler(self):
        return google_exception_handler

    def initial(self, request: Request, *args, **kwargs) -> None:
        # A CORS preflight carries no key: it is answered as on every Gemini route, without one.
        if request.method != "OPTIONS":
            super().initial(request, *args, **kwargs)

    def options(self, request: Request, *args, **kwargs) -> HttpResponse:
        return preflight(request._request)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        return mark_api_answer(response)

    @property
    def key(self) -> ProxyKey:
        assert isinstance(self.request.auth, ProxyKey)
        return self.request.auth

    @property
    def member(self):
        return self.key.user

    def owned(self, queryset: QuerySet) -> QuerySet:
        return queryset.filter(owner=self.member)


class Paging:
    """Google's list paging: ``pageSize`` (default and maximum per resource) and an opaque ``pageToken``.

    The token is the offset, base64-encoded: a list is ordered newest first and
    short-lived, so an offset is what Google's own tokens behave like to a
    client (a page may shift by what was added meanwhile).
    """

    def __init__(self, default_size: int, max_size: int) -> None:
        self.default_size = default_size
        self.max_size = max_size

    def page(self, request: Request, queryset: QuerySet | Sequence) -> tuple[list, str]:
        """One page of ``queryset`` and the token of the next page ("" at the end)."""
        size = self._size(request.query_params.get("pageSize"))
        offset = self._offset(request.query_params.get("pageToken"))
        rows = list(queryset[offset : offset + size + 1])
        more = len(rows) > size
        return rows[:size], (self._token(offset + size) if more else "")

    def _size(self, raw: str | None) -> int:
        if not raw:
            return self.default_size
        try:
            size = int(raw)
        except ValueError:
            raise invalid_argument(f"Invalid value at 'page_size' (TYPE_INT32), {raw!r}") from None
        if size < 0:
            raise invalid_argument("page_size must not be negative.")
        return min(size or self.default_size, self.max_size)

    @staticmethod
    def _offset(raw: str | None) -> int:
        if not raw:
            return 0
        try:
            offset = int(base64.urlsafe_b64decode(raw.encode("ascii") + b"==").decode("ascii"))
        except (ValueError, UnicodeError, binascii.Error):
            raise invalid_argument("Invalid page token.") from None
        if offset < 0:
            raise invalid_argument("Invalid page token.")
        return offset

    @staticmethod
    def _token(offset: int) -> str:
        return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def listed(field: str, items: list[dict], next_page_token: str) -> Response:
    """A list answer: ``{field: [...], "nextPageToken": ...}``; Google leaves out what is empty."""
    body: dict[str, Any] = {}
    if items:
        body[field] = items
    if next_page_token:
        body["nextPageToken"] = next_page_token
    return Response(body, status=status.HTTP_200_OK)
