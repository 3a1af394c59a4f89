"""The Anthropic Messages routes at the gateway's root, as ``ANTHROPIC_BASE_URL`` takes it.

``POST /v1/messages``, ``POST /v1/messages/count_tokens``, and ``GET
/v1/models``, which stays Gemini's unless the request carries
``anthropic-version`` (Anthropic's SDKs and Claude Code always send it).
The relay side serves each call (``serve(request, surface)``: key, limits,
dispatch, usage, errors), so these views only choose the surface::

    async def serve(request, surface):
        return await SurfaceRelay(request, surface).respond()

    urlpatterns += anthropic_routes.urlpatterns_for(serve, gateway.views.list_models, aliases.aliases)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, re_path
from django.views.decorators.csrf import csrf_exempt

from gateway.compat.anthropic_answers import ModelListTranslator
from gateway.compat.anthropic_errors import error_body
from gateway.compat.anthropic_messages import AnthropicCountTokens, AnthropicMessages
from gateway.compat.body_fields import refuse
from gateway.compat.route_methods import only
from gateway.compat.surface import GeminiCall, Surface

Serve = Callable[[HttpRequest, Surface], Awaitable[HttpResponse]]
NativeListModels = Callable[..., Awaitable[HttpResponse]]
Aliases = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]


class AnthropicModels:
    """``GET /v1/models`` with ``anthropic-version``: Gemini's models.list, in Anthropic's list shape."""

    name = "anthropic.messages"

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        self.aliases = aliases or {}

    def parse(self, body: dict, headers: Mapping[str, str]) -> GeminiCall:
        if body not in (None, {}):
            raise refuse("GET /v1/models takes no body")
        # Anthropic pages with limit/after_id; one Gemini page of 1000 holds every model it offers.
        return GeminiCall("", "models.list", {}, ModelListTranslator(self.aliases), {"pageSize": "1000"})

    def error_body(self, status: int, message: str, kind: str) -> dict:
        return error_body(status, message, kind)


def urlpatterns_for(
    serve: Serve,
    native_list_models: NativeListModels | None = None,
    aliases: Aliases = dict,
) -> list[URLPattern]:
    messages, count_tokens = AnthropicMessages(), AnthropicCountTokens()

    @only("POST", error_body)
    async def create_message(request: HttpRequest) -> HttpResponse:
        return await serve(request, messages)

    @only("POST", error_body)
    async def count_message_tokens(request: HttpRequest) -> HttpResponse:
        return await serve(request, count_tokens)

    @only("GET", error_body)
    async def anthropic_models(request: HttpRequest) -> HttpResponse:
        current = aliases()
        return await serve(request, AnthropicModels(await current if inspect.isawaitable(current) else current))

    @csrf_exempt
    async def list_models(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Gemini's own list unless the caller speaks Anthropic's API.
        if native_list_models is not None and "anthropic-version" not in request.headers:
            return await native_list_models(request, version="v1")
        return await anthropic_models(request)

    patterns = [
        path("v1/messages", create_message, name="anthropic-messages"),
        path("v1/messages/count_tokens", count_message_tokens, name="anthropic-count-tokens"),
    ]
    if native_list_models is not None:
        patterns.append(re_path(r"^v1/models/?$", list_models, name="anthropic-models"))
    return patterns
