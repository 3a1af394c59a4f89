from django.urls import path

from executors.consumer import ExecutorConsumer
from executors.protocol import WEBSOCKET_PATH

websocket_urlpatterns = [path(WEBSOCKET_PATH.lstrip("/"), ExecutorConsumer.as_asgi())]
