"""ASGI entry point: HTTP goes to Django, the executor WebSocket to its consumer."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gemproxy_site.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from executors.routing import websocket_urlpatterns  # noqa: E402
from gemproxy_site.handlers import http_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application(),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
