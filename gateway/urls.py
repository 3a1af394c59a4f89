"""The API's URLs: everything under /v1, /v1beta, /v1alpha and /upload answers in Gemini's shape.

Django decodes the path before matching it, so the captured names are
untrusted text; the views validate them (gateway.resources). The last pattern
takes every other path under an API prefix, newlines and doubled slashes
included, so that none reaches Django's HTML 404.
"""

from django.urls import re_path

from gateway import views

VERSION = r"(?P<version>v1|v1beta|v1alpha)"
# "models/gemini-2.5-flash" or "tunedModels/my-model"; the id holds no "/" or ":".
RESOURCE = r"(?P<resource>(?:models|tunedModels)/[^/:]+)"
API_ROOT = r"/*(?:v1|v1beta|v1alpha|upload)"

# The calls that are nearly all of the traffic. gemproxy_site.api_urls matches
# them ahead of every other API route, so that resolving a call tries one
# pattern rather than failing through the files', caches' and foreign ones
# first (7% of the gateway's CPU at 50 clients). Only the gateway's own methods:
# batchGenerateContent has a route of its own (resources.batches_urls), and the
# general pattern below answers every other name.
MODEL_CALL = re_path(
    rf"^{VERSION}/{RESOURCE}:(?P<action>{'|'.join(views.MODEL_ACTIONS)})$",
    views.model_action,
)

urlpatterns = [
    re_path(rf"^{VERSION}/models/?$", views.list_models),
    re_path(rf"^{VERSION}/{RESOURCE}$", views.get_model),
    # Django decodes %3A before routing, so both spellings of ":" arrive here.
    re_path(rf"^{VERSION}/{RESOURCE}:(?P<action>[A-Za-z]+)$", views.model_action),
    # The Files API (/upload/{version}/files) is not served yet: 404 in Gemini's shape.
    # [\s\S], not "." under (?s): Django's URL reversing refuses inline flags.
    re_path(rf"^{API_ROOT}(?:/[\s\S]*)?$", views.unknown_path),
]
