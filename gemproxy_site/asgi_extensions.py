"""ASGI extensions our server offers the applications it serves.

``scope["extensions"][ON_DISCONNECT](callback)`` (HTTP, ``gemproxy_site.http_channel``):
``callback()`` is called once, at once, if the client leaves before its answer
is complete. The API's handler is told this way, instead of keeping a task per
request waiting on ``receive`` for the disconnect.

``scope["extensions"][RECEIVE_INTO](deliver)`` (WebSocket,
``gemproxy_site.websocket_server``): from then on every message of the
connection is handed to ``deliver(message)`` as it arrives, those already
waiting first, and ``receive`` must not be awaited again. The executor's
consumer puts them straight into its mailbox this way, instead of keeping a
task per connection that awaits ``receive`` and moves each message in: a turn
of the loop per frame, between the frame's arrival and the client's answer.

Under another server (Daphne's own, Channels' test communicators) the extensions are absent.
"""

ON_DISCONNECT = "gemproxy.on_disconnect"
RECEIVE_INTO = "gemproxy.receive_into"
