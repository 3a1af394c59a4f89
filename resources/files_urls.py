"""The files routes of the stateful API (included by resources.urls, ahead of gateway's catch-all)."""

from django.urls import URLPattern, re_path

from gateway.views import unknown_path
from resources import file_views, uploads

VERSION = r"(?P<version>v1|v1beta|v1alpha)"
# Validated by the views (an invalid id gets Google's error, not Django's 404).
FILE_ID = r"(?P<file_id>[^/:]+)"

urlpatterns: list[URLPattern] = [
    re_path(rf"^upload/{VERSION}/files/?$", uploads.upload_files),
    re_path(rf"^{VERSION}/files/?$", file_views.FileList.as_view()),
    re_path(rf"^{VERSION}/files/{FILE_ID}$", file_views.FileDetail.as_view()),
    re_path(rf"^{VERSION}/files/{FILE_ID}:download$", file_views.download),
    re_path(rf"^download/{VERSION}/files/{FILE_ID}:download$", file_views.download),
    # Everything else under /download/ answers as any unknown API path does (gateway's catch-all has /upload/).
    re_path(r"^/*download(?:/[\s\S]*)?$", unknown_path),
]
