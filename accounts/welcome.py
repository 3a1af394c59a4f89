"""The page a one-time sign-in link opens: the member chooses a password and is signed in.

Opening the link (GET) changes nothing, so that link previews in chat tools
cannot use it up; choosing a password (POST) claims the link and signs in,
in one transaction. A link that cannot be used says why, in words, with a
status to match: 404 unknown, 410 used, replaced or expired, 403 disabled.
"""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.forms import SetPasswordForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import Invitation

REFUSALS = {
    "unknown": (404, "This sign-in link is not valid", "Check that you copied all of it, or ask an admin for another."),
    "used": (410, "This sign-in link has already been used", "Log in with the password you chose."),
    "replaced": (410, "This sign-in link was replaced by a newer one", "Use the newest link you were sent."),
    "expired": (410, "This sign-in link has expired", "Ask an admin for a new one."),
    "disabled": (403, "This account is disabled", "Ask an admin to enable it."),
}


def _refusal(request: HttpRequest, state: str, invitation: Invitation | None) -> HttpResponse:
    status, title, advice = REFUSALS.get(state, REFUSALS["used"])  # "usable" cannot come back here
    context = {"title": title, "advice": advice, "state": state, "invitation": invitation}
    return render(request, "accounts/welcome_refused.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def welcome(request: HttpRequest, token: str) -> HttpResponse:
    invitation = Invitation.objects.find(token)
    state = "unknown" if invitation is None else invitation.state()
    if invitation is None or state != "usable":
        return _keep_secret(_refusal(request, state, invitation))
    form = SetPasswordForm(invitation.user, request.POST if request.method == "POST" else None)
    if form.is_valid():
        with transaction.atomic():
            if not invitation.claim():  # used, replaced or expired since the page was opened
                invitation.refresh_from_db()
                return _keep_secret(_refusal(request, invitation.state(), invitation))
            user = form.save()
        login(request, user)
        return redirect("accounts:me")
    return _keep_secret(render(request, "accounts/welcome.html", {"form": form, "invitation": invitation}))


def _keep_secret(response: HttpResponse) -> HttpResponse:
    # The address holds the secret: no Referer carries it to another site. Not "no-referrer":
    # browsers then send "Origin: null" with the form, and CSRF protection refuses it.
    response["Referrer-Policy"] = "same-origin"
    return response
