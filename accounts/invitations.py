"""One-time sign-in links: how an invited member first gets in and chooses a password.

``invite_member`` and the admin's action on users make them; the welcome page
(``accounts.views.welcome``) follows them. A link works once, until
``GEMPROXY_INVITE_SECONDS`` have passed, and only while it is the member's
newest. Its secret is stored as a prefix and a keyed hash, like proxy keys,
and it sits in the link's path, which the access log redacts
(``gemproxy_site.access_log``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from accounts.models import Invitation

# What ``scripts/start`` and the README serve on; a command has no request to read an origin from.
LOCAL_ORIGIN = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SignInLink:
    url: str  # shown once, never stored
    expires_at: datetime


def configured_origin() -> str:
    """The origin members reach, as far as a command can know it: PUBLIC_BASE_URL, else the local default."""
    return settings.PUBLIC_BASE_URL or LOCAL_ORIGIN


def invite(user, origin: str) -> SignInLink:
    """A new one-time sign-in link for ``user`` at ``origin``; their older links stop working."""
    invitation, secret = Invitation.objects.issue(user)
    return SignInLink(f"{origin.rstrip('/')}{reverse('accounts:welcome', args=[secret])}", invitation.expires_at)
