from django.urls import path, re_path

from accounts import api, views, welcome

app_name = "accounts"

urlpatterns = [
    path("me/", views.overview, name="me"),
    path("me/login/", views.LoginView.as_view(), name="login"),
    path("me/logout/", views.LogoutView.as_view(), name="logout"),
    path("me/welcome/<str:token>/", welcome.welcome, name="welcome"),
    # Anything else under welcome/ (a link cut short, pasted twice...) gets the same clear answer.
    re_path(r"^me/welcome/(?P<token>.*)$", welcome.welcome),
    path("api/v1/me/keys", api.my_keys, name="api-keys"),
    path("api/v1/me/usage", api.my_usage, name="api-usage"),
]
