"""The foreign surfaces' async views: each hands its request, with its surface, to the one relay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.answer_headers import mark_api_answer, preflight
from gateway.compat.aliases import aliases
from gateway.compat.openai_chat import OpenAIChat
from gateway.compat.openai_embeddings import OpenAIEmbeddings
from gateway.compat.openai_models import OpenAIModels
from gateway.compat.relay import SurfaceRelay, surface_response
from gateway.compat.surface import Surface
from gateway.errors import ApiError, check_method, internal_error

View = Callable[..., Awaitable[HttpResponse]]

log = logging.getLogger(__name__)


def foreign_api(surface: Surface, *methods: str) -> Callable[[View], View]:
    """Allow only ``methods`` (OPTIONS always, for CORS); every error, the view's own too, in the surface's shape."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method == "OPTIONS":
                return mark_api_answer(preflight(request))
            try:
                check_method(request, methods)
                response = await view(request, *args, **kwargs)
            except ApiError as error:
                response = surface_response(surface, error)
            except Exception:
                log.exception("%s %r failed in the gateway", request.method, request.path)
                response = surface_response(surface, internal_error())
            return mark_api_answer(response)

        return wrapper

    return decorate


OPENAI = OpenAIChat()  # its error shape serves every OpenAI route


@foreign_api(OPENAI, "POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await SurfaceRelay(request, OpenAIChat()).respond()


@foreign_api(OPENAI, "POST")
async def embeddings(request: HttpRequest) -> HttpResponse:
    return await SurfaceRelay(request, OpenAIEmbeddings()).respond()


@foreign_api(OPENAI, "GET")
async def list_models(request: HttpRequest) -> HttpResponse:
    return await SurfaceRelay(request, OpenAIModels(None, await aliases())).respond()


@foreign_api(OPENAI, "GET")
async def get_model(request: HttpRequest, model: str) -> HttpResponse:
    return await SurfaceRelay(request, OpenAIModels(model, await aliases())).respond()


@foreign_api(OPENAI)
async def unknown_openai_path(request: HttpRequest) -> HttpResponse:
    path = request.path if len(request.path) <= 120 else request.path[:120] + "..."
    raise ApiError(
        404, "NOT_FOUND", f"Unknown path {path!r}: this gateway serves chat/completions, embeddings and models."
    )


async def serve(request: HttpRequest, surface: Surface) -> HttpResponse:
    """One foreign call on the one relay path; the routes of each surface choose only the surface."""
    return await SurfaceRelay(request, surface).respond()
