"""The Gemini REST surface: async views that validate the URL and hand the call to the relay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import usage
from accounts.usage import UsageEvent
from gateway.answer_headers import mark_api_answer, preflight
from gateway.errors import ApiError, check_method, internal_error, not_found
from gateway.query import parse_query
from gateway.relay import Call, Relay
from gateway.resources import model_name, quoted

# Method name -> whether it streams. Everything else under models/ is unknown.
MODEL_ACTIONS = {
    "generateContent": False,
    "streamGenerateContent": True,
    "countTokens": False,
    "embedContent": False,
    "batchEmbedContents": False,
}

View = Callable[..., Awaitable[HttpResponse]]

log = logging.getLogger(__name__)


def gemini_api(*methods: str) -> Callable[[View], View]:
    """Allow only ``methods`` (all when none are named; OPTIONS always, for CORS), and answer every ApiError in
    Gemini's shape, with the headers of an API answer."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            return mark_api_answer(await _answer(view, methods, request, *args, **kwargs))

        return wrapper

    return decorate


async def _answer(view: View, methods: tuple[str, ...], request: HttpRequest, *args, **kwargs) -> HttpResponse:
    if request.method == "OPTIONS":
        return preflight(request)
    try:
        check_method(request, methods)
        return await view(request, *args, **kwargs)
    except ApiError as error:
        _record_refusal(request, error, view.__name__, kwargs)
        return error.response()
    except Exception:
        log.exception("%s %r failed in the gateway", request.method, request.path)
        return internal_error().response()


_METHOD_OF_VIEW = {"list_models": "models.list", "get_model": "models.get"}


def _record_refusal(request: HttpRequest, error: ApiError, view_name: str, url_parts: dict) -> None:
    """A call refused before the relay (bad URL, method or query) is counted like any other.

    It carries no key (none was checked), so the usage writer adds it to one row per minute
    rather than keeping each: a flood of bad URLs cannot fill the table.
    """
    resource = url_parts.get("resource", "")
    usage.record(
        UsageEvent(
            outcome=error.outcome,
            method=url_parts.get("action") or _METHOD_OF_VIEW.get(view_name, "unknown"),
            model=resource.partition("/")[2],
            status_code=error.http_status,
            client_ip=request.META.get("REMOTE_ADDR", ""),
        )
    )


def _query(request: HttpRequest):
    # The raw query string: request.GET would raise past 1,000 fields and keep the last of repeated values.
    return parse_query(request.META.get("QUERY_STRING", ""))


@gemini_api("GET")
async def list_models(request: HttpRequest, version: str) -> HttpResponse:
    return await Relay(request, Call(version, None, query=_query(request))).respond()


@gemini_api("GET")
async def get_model(request: HttpRequest, version: str, resource: str) -> HttpResponse:
    call = Call(version, model_name(resource), query=_query(request))
    return await Relay(request, call).respond()


@gemini_api("POST")
async def model_action(request: HttpRequest, version: str, resource: str, action: str) -> HttpResponse:
    model = model_name(resource)
    # batchGenerateContent is routed ahead of this view, to resources.batch_views (resources.batches_urls).
    if action not in MODEL_ACTIONS:
        raise not_found(f"Method {action!r} is not supported by gemproxy for {model}.")
    call = Call(version, model, action, query=_query(request), streamed=MODEL_ACTIONS[action])
    return await Relay(request, call).respond()


@gemini_api()
async def unknown_path(request: HttpRequest) -> HttpResponse:
    message = f"The requested URL {quoted(request.path)} was not found on this server."
    if request.path.startswith("//"):
        message += " (Does the client's base URL end with a slash?)"
    raise not_found(message)
