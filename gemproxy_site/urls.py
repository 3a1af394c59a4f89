from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gateway.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(url="/me/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    path("", include("executors.webapp")),
    path("", include("accounts.urls")),
    path("", include("gateway.urls")),
]
