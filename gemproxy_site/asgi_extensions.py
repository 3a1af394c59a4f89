"""ASGI extensions our server (``gemproxy_site.http_channel``) offers the applications it serves.

``scope["extensions"][ON_DISCONNECT](callback)``: ``callback()`` is called
once, at once, if the client leaves before its answer is complete. The API's
handler is told this way, instead of keeping a task per request waiting on
``receive`` for the disconnect; under another server the extension is absent.
"""

ON_DISCONNECT = "gemproxy.on_disconnect"
