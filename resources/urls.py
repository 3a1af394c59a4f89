"""The stateful API's routes: files, cached contents, batches; each feature keeps its own module."""

from django.urls import include, path

urlpatterns = [
    path("", include("resources.files_urls")),
    path("", include("resources.caches_urls")),
    path("", include("resources.batches_urls")),
]
