"""The OpenAI- and Anthropic-compatible routes (included ahead of gateway's catch-all)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
