from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gemproxy_site.favicon import favicon

# The admin names the product, not the framework.
admin.site.site_header = "gemproxy administration"
admin.site.site_title = "gemproxy admin"
admin.site.index_title = "Members, keys, executors and usage"

urlpatterns = [
    path("", RedirectView.as_view(url="/me/", permanent=False)),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("executors.webapp")),
    path("", include("accounts.urls")),
    # The API (probes, Gemini, files, the foreign surfaces): ApiHandler serves these paths from it alone.
    path("", include("gemproxy_site.api_urls")),
]
