"""Sign-in throttling for the admin's and the members' login pages.

After ``GEMPROXY_SIGNIN_FAILURE_LIMIT`` failed passwords for one username from
one address, further sign-ins of that username from there are refused, the
right password included, until ``GEMPROXY_SIGNIN_LOCKOUT_SECONDS`` have passed
since the last failure; a successful sign-in clears the count. The count lives
in the database, so every gateway process of a distributed install sees it,
and it is keyed by a hash: neither the username nor the address is stored.

Both login forms are built from ``ThrottledSignIn``; nothing else signs people in.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import SignInFailures

DEFAULT_FAILURE_LIMIT = 10
DEFAULT_LOCKOUT_SECONDS = 15 * 60


def _failure_limit() -> int:
    return getattr(settings, "GEMPROXY_SIGNIN_FAILURE_LIMIT", DEFAULT_FAILURE_LIMIT)


def _lockout() -> timedelta:
    return timedelta(seconds=getattr(settings, "GEMPROXY_SIGNIN_LOCKOUT_SECONDS", DEFAULT_LOCKOUT_SECONDS))


def throttle_key(username: str, client_ip: str) -> str:
    return hashlib.sha256(f"{username.casefold()}\n{client_ip}".encode("utf-8", "replace")).hexdigest()


def _key_of(request: HttpRequest, username: str) -> str:
    return throttle_key(username, request.META.get("REMOTE_ADDR", ""))


def refusal(request: HttpRequest, username: str) -> str | None:
    """Why this sign-in is refused before its password is even checked, or None."""
    now = timezone.now()
    row = SignInFailures.objects.filter(key=_key_of(request, username), expires_at__gt=now).first()
    if row is None or row.failures < _failure_limit():
        return None
    minutes = max(1, math.ceil((row.expires_at - now).total_seconds() / 60))
    return (
        f"Too many failed sign-ins for this username from your address. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def count_failure(request: HttpRequest, username: str) -> None:
    key, now = _key_of(request, username), timezone.now()
    until = now + _lockout()
    # One UPDATE counts atomically; gateway processes racing to create the row meet on its unique key.
    for _ in range(2):
        counted = SignInFailures.objects.filter(key=key, expires_at__gt=now)
        if counted.update(failures=F("failures") + 1, expires_at=until):
            return
        try:
            with transaction.atomic():
                SignInFailures.objects.filter(key=key, expires_at__lte=now).delete()  # an old count starts again
                SignInFailures.objects.create(key=key, failures=1, expires_at=until)
            SignInFailures.objects.filter(expires_at__lte=now).delete()  # keeps the table small
            return
        except IntegrityError:
            continue


def clear_failures(request: HttpRequest, username: str) -> None:
    SignInFailures.objects.filter(key=_key_of(request, username)).delete()


class ThrottledSignIn(AuthenticationForm):
    """An ``AuthenticationForm`` that refuses while locked out, counts wrong passwords and resets on success."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is None or self.request is None:
            return super().clean()  # the form already says what is missing
        message = refusal(self.request, username)
        if message:
            raise ValidationError(message, code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                count_failure(self.request, username)
            raise
        clear_failures(self.request, username)
        return cleaned


class SignInForm(ThrottledSignIn):
    """The members' login form at ``/me/login/``."""


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    """The admin's login form at ``/admin/login/``."""
