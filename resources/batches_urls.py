"""The batches routes of the stateful API (included by resources.urls, ahead of gateway's catch-all).

``models/{m}:batchGenerateContent`` is a model action, routed here ahead of
gateway.views' other model actions (resources.urls comes first). Ids are matched loosely here and checked
by the views, so that a malformed one gets Google's 404, not the catch-all's.
"""

from django.urls import URLPattern, re_path

from gateway.urls import RESOURCE, VERSION
from resources import batch_views

_ID = r"(?P<batch_id>[^/:]+)"

urlpatterns: list[URLPattern] = [
    re_path(rf"^{VERSION}/{RESOURCE}:(?P<action>batchGenerateContent)$", batch_views.batch_generate_content),
    re_path(rf"^{VERSION}/batches/?$", batch_views.BatchList.as_view()),
    re_path(rf"^{VERSION}/batches/{_ID}$", batch_views.batch),
    re_path(rf"^{VERSION}/batches/{_ID}:cancel$", batch_views.cancel_batch),
    re_path(rf"^{VERSION}/batches/{_ID}:(?P<action>[^/]*)$", batch_views.batch_action),
    re_path(rf"^{VERSION}/operations/(?P<operation_id>[^/:]+)$", batch_views.operation),
    re_path(rf"^{VERSION}/{RESOURCE}/operations/(?P<operation_id>[^/:]+)$", batch_views.model_operation),
]
