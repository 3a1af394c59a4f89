"""The files routes of the stateful API (included by resources.urls, ahead of gateway's catch-all)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
