"""The URLconf of the API paths (gemproxy_site.handlers.is_api_path): what ApiHandler resolves against.

Kept apart from the site's so that an API call is matched against a dozen
patterns rather than the admin's and the members' pages first. The site's
URLconf includes it, so Django's test client and ``reverse`` see the same routes.
"""

from django.urls import include, path

from gateway.health import healthz, readyz
from gateway.metrics import metrics_view
from gateway.urls import MODEL_CALL

urlpatterns = [
    MODEL_CALL,
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    # Ahead of gateway.urls, whose last pattern answers every other API path with Google's 404.
    path("", include("resources.urls")),
    path("", include("gateway.compat.urls")),
    path("", include("gateway.urls")),
]
