"""Members' self-service pages: their keys, limits, usage and how to connect their tools."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils import timezone

from accounts import reports
from accounts.dashboard import requests_chart, tokens_chart
from accounts.models import UsageRecord
from accounts.reports import Period
from accounts.selfservice import base_url, key_summaries
from accounts.signin import SignInForm
from resources.file_views import shown_files
from resources.models import Batch, CachedContent

USAGE_DAYS = 30
RECENT_CALLS = 25
SHOWN_FILES = 50
SHOWN_CACHES = 50
SHOWN_BATCHES = 50


@login_required(login_url=reverse_lazy("accounts:login"))
def overview(request: HttpRequest) -> HttpResponse:
    days = reports.daily(Period.last_days(USAGE_DAYS), user_id=request.user.pk)
    recent = UsageRecord.objects.filter(user=request.user).select_related("key")[:RECENT_CALLS]
    # As the API does: a resource past its expiry is gone for the member, even before the sweep removes it.
    now = timezone.now()
    return render(
        request,
        "accounts/me.html",
        {
            "summaries": key_summaries(request.user),
            "totals": reports.totals(days),
            "charts": [
                requests_chart(days, f"Your requests per day, last {USAGE_DAYS} days"),
                tokens_chart(days, "Your tokens per day, by model"),
            ],
            "recent": recent,
            "files": shown_files().filter(owner=request.user).select_related("key")[:SHOWN_FILES],
            "caches": CachedContent.objects.filter(owner=request.user, expires_at__gt=now).select_related("key")[
                :SHOWN_CACHES
            ],
            "batches": Batch.objects.filter(owner=request.user, expires_at__gt=now).select_related("key")[
                :SHOWN_BATCHES
            ],
            "base_url": base_url(request),
        },
    )


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("accounts:me")


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("accounts:login")
