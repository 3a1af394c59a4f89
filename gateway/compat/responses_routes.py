"""The OpenAI Responses route, ``POST {base}/responses``, under both OpenAI-compatible bases.

The relay side serves each call (``serve(request, surface)``), so the view
only chooses the surface::

    async def serve(request, surface):
        return await SurfaceRelay(request, surface).respond()

    urlpatterns += responses_routes.urlpatterns_for(serve)

To keep ``previous_response_id`` per member rather than per key, the relay
side binds the authenticated member before parsing:
``surface.for_owner(f"member:{member.pk}")`` when the surface has
``for_owner``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from gateway.compat.openai_responses import OpenAIResponses
from gateway.compat.route_methods import only
from gateway.compat.surface import Surface

Serve = Callable[[HttpRequest, Surface], Awaitable[HttpResponse]]

# Google's documented base for its OpenAI-compatible endpoint, and the one OpenAI's own clients default to.
BASES = ("v1beta/openai/", "openai/v1/")


def urlpatterns_for(serve: Serve, surface: OpenAIResponses | None = None) -> list[URLPattern]:
    responses = surface or OpenAIResponses()

    @only("POST", responses.error_body)
    async def create_response(request: HttpRequest) -> HttpResponse:
        return await serve(request, responses)

    return [path(f"{base}responses", create_response, name=f"openai-responses-{i}") for i, base in enumerate(BASES)]
