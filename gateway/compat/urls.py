"""The OpenAI- and Anthropic-compatible routes (included ahead of gateway's catch-all).

OpenAI's surface answers under Google's documented base ``/v1beta/openai/``
and under ``/openai/v1/``; every other path under those bases answers
OpenAI's 404, never Gemini's or Django's HTML one.
"""

from django.urls import re_path

from gateway import views as gemini_views
from gateway.compat import aliases, anthropic_routes, responses_routes, views

OPENAI_BASE = r"/*(?:v1beta/openai|openai/v1)"

urlpatterns = [
    re_path(rf"^{OPENAI_BASE}/chat/completions/?$", views.chat_completions),
    re_path(rf"^{OPENAI_BASE}/embeddings/?$", views.embeddings),
    re_path(rf"^{OPENAI_BASE}/models/?$", views.list_models),
    # [\s\S]: an id may hold "/" ("models/gemini-2.5-flash"); aliases.resolve judges it.
    re_path(rf"^{OPENAI_BASE}/models/(?P<model>[\s\S]+?)/?$", views.get_model),
    *responses_routes.urlpatterns_for(views.serve),
    # Ahead of gateway.urls: GET /v1/models is Gemini's unless the request carries anthropic-version.
    *anthropic_routes.urlpatterns_for(views.serve, gemini_views.list_models, aliases.aliases),
    re_path(r"^/*(?:v1beta/openai|openai)(?:/[\s\S]*)?$", views.unknown_openai_path),
]
