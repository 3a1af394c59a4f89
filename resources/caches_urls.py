"""The caches routes of the stateful API (included by resources.urls, ahead of gateway's catch-all)."""

from django.urls import URLPattern, re_path

from resources import cache_views

VERSION = r"(?P<version>v1|v1beta|v1alpha)"

urlpatterns: list[URLPattern] = [
    re_path(rf"^{VERSION}/cachedContents/?$", cache_views.collection),
    # Any id is taken here, so that a malformed one is this resource's 404, not the catch-all's.
    re_path(rf"^{VERSION}/cachedContents/(?P<cache_id>[^/]+)$", cache_views.detail),
]
