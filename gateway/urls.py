from django.urls import re_path

from gateway import views

VERSION = r"(?P<version>v1|v1beta|v1alpha)"
# "models/gemini-2.5-flash" or "tunedModels/my-model"; the id holds no "/" or ":".
RESOURCE = r"(?P<resource>(?:models|tunedModels)/[^/:]+)"

urlpatterns = [
    re_path(rf"^{VERSION}/models/?$", views.list_models),
    re_path(rf"^{VERSION}/{RESOURCE}$", views.get_model),
    # Django decodes %3A before routing, so both spellings of ":" arrive here.
    re_path(rf"^{VERSION}/{RESOURCE}:(?P<action>[A-Za-z]+)$", views.model_action),
    re_path(rf"^{VERSION}/(?P<rest>.*)$", views.unknown_path),
]
