from django.urls import path

from accounts import api, views

app_name = "accounts"

urlpatterns = [
    path("me/", views.overview, name="me"),
    path("me/login/", views.LoginView.as_view(), name="login"),
    path("me/logout/", views.LogoutView.as_view(), name="logout"),
    path("api/v1/me/keys", api.my_keys, name="api-keys"),
    path("api/v1/me/usage", api.my_usage, name="api-usage"),
]
