"""The Gemini REST surface: async views that validate the URL and hand the call to the relay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.errors import ApiError, internal_error, not_found
from gateway.relay import Call, Relay

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
    """Allow only ``methods``, and answer every ApiError in Gemini's shape."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                if request.method not in methods:
                    allowed = ", ".join(methods)
                    raise ApiError(
                        405,
                        "INVALID_ARGUMENT",
                        f"Method {request.method} is not allowed on {request.path}; use {allowed}.",
                        headers={"Allow": allowed},
                    )
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()
            except Exception:
                log.exception("%s %s failed in the gateway", request.method, request.path)
                return internal_error().response()

        return wrapper

    return decorate


def _model_id(resource: str) -> str:
    return resource.split("/", 1)[1]


@gemini_api("GET")
async def list_models(request: HttpRequest, version: str) -> HttpResponse:
    return await Relay(request, Call(version, "models", "", "")).respond()


@gemini_api("GET")
async def get_model(request: HttpRequest, version: str, resource: str) -> HttpResponse:
    return await Relay(request, Call(version, resource, "", _model_id(resource))).respond()


@gemini_api("POST")
async def model_action(request: HttpRequest, version: str, resource: str, action: str) -> HttpResponse:
    if action not in MODEL_ACTIONS:
        raise not_found(f"Method {action!r} is not supported by gemproxy for {resource}.")
    call = Call(version, resource, action, _model_id(resource), streamed=MODEL_ACTIONS[action])
    return await Relay(request, call).respond()


@csrf_exempt
async def unknown_path(request: HttpRequest, version: str = "", rest: str = "") -> HttpResponse:
    return not_found(f"The requested URL {request.path} was not found on this server.").response()
