"""A proxy key authenticates API scripts too, sent the way Gemini clients send it."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.request import Request

from accounts.models import ProxyKey
from accounts.rejections import Rejection


def secret_from(request) -> str:
    """The key from ``x-goog-api-key`` (any case), ``?key=``, ``Authorization: Bearer`` or, as Anthropic's
    clients send it, ``x-api-key``.

    Read from ``request.META``: ``request.headers`` would first rename every
    header the client sent, on every call.
    """
    header = request.META.get("HTTP_X_GOOG_API_KEY")
    if header:
        return header.strip()
    query = request.GET.get("key")
    if query:
        return query.strip()
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.META.get("HTTP_X_API_KEY", "").strip()


class ProxyKeyAuthentication(BaseAuthentication):
    """Authenticates as the key's member; ``request.auth`` is the ``ProxyKey``.

    The key's rules hold here as on the Gemini routes: revoked, expired or
    disabled keys are refused, and so are calls from outside its IP allow-list.
    """

    def authenticate(self, request: Request):
        secret = secret_from(request._request)
        if not secret:
            return None
        try:
            key = ProxyKey.objects.authenticate(secret)
        except Rejection as rejection:
            raise AuthenticationFailed(rejection.message) from None
        try:
            key.check_client_ip(request._request.META.get("REMOTE_ADDR", ""))
        except Rejection as rejection:
            raise PermissionDenied(rejection.message) from None
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="gemproxy"'
