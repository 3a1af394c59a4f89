from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gateway.health import healthz, readyz
from gateway.metrics import metrics_view
from gemproxy_site.favicon import favicon

# The admin names the product, not the framework.
admin.site.site_header = "gemproxy administration"
admin.site.site_title = "gemproxy admin"
admin.site.index_title = "Members, keys, executors and usage"

urlpatterns = [
    path("", RedirectView.as_view(url="/me/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("executors.webapp")),
    path("", include("accounts.urls")),
    # Ahead of gateway.urls, whose last pattern answers every other API path with Google's 404.
    path("", include("resources.urls")),
    path("", include("gateway.compat.urls")),
    path("", include("gateway.urls")),
]
