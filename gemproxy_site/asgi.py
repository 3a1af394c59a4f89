"""ASGI entry point: HTTP goes to Django, the executor WebSocket to its consumer."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gemproxy_site.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from executors.routing import websocket_urlpatterns  # noqa: E402
from gemproxy_site.handlers import http_application  # noqa: E402


async def refuse_websocket(scope, receive, send) -> None:
    """Closed before it is accepted, which Daphne answers with 403 at the handshake.

    Channels' router raises for a path it has no route for, which Daphne turns
    into a 500 and a traceback in the log for any client that asks.
    """
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


_websocket_routes = URLRouter([*websocket_urlpatterns, re_path(r"", refuse_websocket)])


async def websocket_application(scope, receive, send) -> None:
    # The router also raises for a path outside Daphne's --root-path.
    if not scope["path"].startswith(scope.get("root_path", "")):
        await refuse_websocket(scope, receive, send)
        return
    await _websocket_routes(scope, receive, send)


application = ProtocolTypeRouter({"http": http_application(), "websocket": websocket_application})
