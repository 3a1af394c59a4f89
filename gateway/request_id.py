"""The id that follows one call through the gateway's log, the executor's log and the answer.

A client's ``x-request-id`` is kept when it is well-formed, so that a team can
find its own calls in gemproxy's logs; anything else gets a fresh id. Logs and
executors see it, so it must never be able to carry a secret: a value shaped
like a gemproxy secret or a Google API key is replaced too.
"""

from __future__ import annotations

import re

from django.http import HttpRequest

from gemproxy_site.ids import new_id

HEADER = "x-request-id"
MAX_LENGTH = 128
# Visible ASCII without quotes or backslashes: safe in a header, a log line and JSON alike.
_WELL_FORMED = re.compile(rf"[!#-\[\]-~]{{1,{MAX_LENGTH}}}")
# gemproxy's proxy keys, executor tokens and sign-in links; Google's API keys.
_SECRET_SHAPED = re.compile(r"(gpk|gpe|gpi)_|AIza", re.IGNORECASE)


def well_formed(value: str) -> bool:
    return bool(_WELL_FORMED.fullmatch(value)) and not _SECRET_SHAPED.search(value)


def new_request_id() -> str:
    return new_id()


def request_id_of(request: HttpRequest) -> str:
    sent = request.META.get("HTTP_X_REQUEST_ID")  # request.headers would build every header's name first
    return sent if sent is not None and well_formed(sent) else new_request_id()
