"""The cachedContents routes: create reaches an upstream (async); get, list, patch and delete answer from the database.

PATCH and DELETE change gemproxy's row in a DRF view, then reach the upstream
copies from the async route around it (``follow_up``): a synchronous view
must not hold the process's one ORM thread while an executor answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import usage
from accounts.limits import Rejection, admit
from accounts.usage import UsageEvent
from gateway.answer_headers import mark_api_answer, preflight
from gateway.auth import authenticate
from gateway.errors import ApiError, invalid_argument
from gateway.payload import checked_body
from gateway.relay import BACKEND_ERRORS
from gateway.views import gemini_api
from resources import cache_requests, caches
from resources.google_api import GoogleResourceView, Paging, listed
from resources.models import CachedContent

log = logging.getLogger(__name__)
# Google's list of cached contents: at most 1000 a page.
PAGING = Paging(default_size=100, max_size=1000)
_UPDATABLE = {"ttl", "expireTime", "expire_time"}


class CachedContentSerializer(serializers.BaseSerializer):
    def to_representation(self, instance: CachedContent) -> dict:
        return cache_requests.shape(instance)


class _CacheView(GoogleResourceView):
    def live(self):
        return self.owned(CachedContent.objects.filter(expires_at__gt=timezone.now()))

    def cache(self, cache_id: str) -> CachedContent:
        cache = (
            self.live().filter(id=cache_id).first()
            if cache_requests.cache_id_from(f"cachedContents/{cache_id}")
            else None
        )
        if cache is None:
            raise caches.absent(f"cachedContents/{cache_id}")
        return cache


class CachedContentList(_CacheView):
    def get(self, request: Request, version: str) -> Response:
        rows, next_page_token = PAGING.page(request, self.live())
        return listed("cachedContents", CachedContentSerializer(rows, many=True).data, next_page_token)


class CachedContentDetail(_CacheView):
    def get(self, request: Request, version: str, cache_id: str) -> Response:
        return Response(CachedContentSerializer(self.cache(cache_id)).data)

    def patch(self, request: Request, version: str, cache_id: str) -> Response:
        cache = self.cache(cache_id)
        mask = request.query_params.get("updateMask")
        if mask is not None:
            unknown = {name.strip() for name in mask.split(",") if name.strip()} - _UPDATABLE
            if unknown:
                raise invalid_argument(f"Only ttl or expire_time can be updated, not {', '.join(sorted(unknown))}.")
        # The raw body, whatever its Content-Type says (as Google reads it); detail() checked it is bounded JSON.
        try:
            body = json.loads(request._request.body or b"{}")
        except ValueError:
            raise invalid_argument("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise invalid_argument("Invalid JSON payload received. The request body must be a JSON object.")
        now = timezone.now()
        cache.expires_at = cache_requests.expiry_from(body, now, default=None)
        cache.updated_at = now
        cache.save(update_fields=["expires_at", "updated_at"])
        response = Response(CachedContentSerializer(cache).data)
        response.follow_up = lambda: caches.push_expiry(cache)
        return response

    def delete(self, request: Request, version: str, cache_id: str) -> Response:
        cache = self.cache(cache_id)
        copies = caches.copies_of(cache)
        cache.delete()
        response = Response({})
        response.follow_up = lambda: caches.delete_copies(cache_id, copies)
        return response


_list_view = CachedContentList.as_view()
_detail_view = CachedContentDetail.as_view()


def _rendered(view: Callable[..., HttpResponse], request: HttpRequest, **kwargs: str) -> HttpResponse:
    response = view(request, **kwargs)
    render = getattr(response, "render", None)
    return render() if callable(render) else response


async def _drf(view: Callable[..., HttpResponse], request: HttpRequest, **kwargs: str) -> HttpResponse:
    response = await sync_to_async(_rendered)(view, request, **kwargs)
    follow_up: Callable[[], Awaitable[None]] | None = getattr(response, "follow_up", None)
    if follow_up is not None:
        await follow_up()
    return response


@csrf_exempt
async def collection(request: HttpRequest, version: str) -> HttpResponse:
    if request.method == "GET":
        return await _drf(_list_view, request, version=version)
    return await create_cached_content(request, version)


@csrf_exempt
async def detail(request: HttpRequest, version: str, cache_id: str) -> HttpResponse:
    if request.method == "OPTIONS":  # a browser's CORS preflight carries no key
        return mark_api_answer(preflight(request))
    if request.method == "PATCH":
        try:
            checked_body(request)  # size and nesting bounded before DRF's parser sees the body
        except ApiError as error:
            return mark_api_answer(error.response())
    return await _drf(_detail_view, request, version=version, cache_id=cache_id)


def _origins(request: HttpRequest) -> set[str]:
    """The origins a full file uri of this gateway may carry: its public one, and the one this call came to.

    The Host header as sent, not ``get_host()``, which refuses (a 500) a Host the API serves anyway.
    """
    origins = {f"{request.scheme}://{request.META.get('HTTP_HOST', '')}"}
    if settings.PUBLIC_BASE_URL:
        parts = urlsplit(settings.PUBLIC_BASE_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


@gemini_api("POST")
async def create_cached_content(request: HttpRequest, version: str) -> HttpResponse:
    started = time.monotonic()
    key = await authenticate(request)
    event = UsageEvent(
        outcome="ok",
        method="cachedContents.create",
        user_id=key.user_id,
        key_id=key.pk,
        client_ip=request.META.get("REMOTE_ADDR", ""),
    )
    admission = None
    try:
        body = checked_body(request)
        event.request_bytes = len(body)
        wanted = cache_requests.read_create_request(json.loads(body), timezone.now())
        event.model = wanted.model.removeprefix("models/")
        try:
            admission = await admit(key, model=event.model, client_ip=event.client_ip, request_body=body)
        except Rejection as rejection:
            raise ApiError.from_rejection(rejection) from None
        cache, event.executor_account = await caches.create(key.user_id, key.pk, wanted, _origins(request))
        event.status_code = 200
        answer = json.dumps(cache_requests.shape(cache), indent=2)
        event.response_bytes = len(answer)
        return HttpResponse(answer, content_type="application/json; charset=UTF-8")
    except BACKEND_ERRORS as error:
        log.error("cachedContents.create refused: a backing service is unavailable: %r", error)
        unavailable = ApiError(
            503,
            "UNAVAILABLE",
            "A service the gateway depends on is unavailable; try again shortly.",
            outcome="unavailable",
            headers={"Retry-After": "5"},
        )
        event.outcome, event.status_code = unavailable.outcome, unavailable.http_status
        return unavailable.response()
    except ApiError as error:
        # Answered here, not raised: gemini_api would record the refusal a second time.
        event.outcome, event.status_code = error.outcome, error.http_status
        return error.response()
    finally:
        event.latency_ms = int((time.monotonic() - started) * 1000)
        if admission is not None:
            await admission.settle(0)
        await usage.arecord(event)
