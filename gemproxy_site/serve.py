"""Run gemproxy under Daphne: ``python -m gemproxy_site.serve [daphne options]``.

The same as ``daphne gemproxy_site.asgi:application`` except that the access
log never shows a secret (clients may put their key in the query string,
``?key=``, and Daphne logs query strings verbatim), and that per-request work
measured as useless on the relay path is skipped (see the comments in main).
"""

from __future__ import annotations

import os
import re
import sys

from daphne import cli, http_protocol
from daphne.access import AccessLogGenerator

_SECRET_PARAMETER = re.compile(r"([?&](?:key|token)=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET_PARAMETER.sub(r"\1REDACTED", text)


class RawBodyRequest(http_protocol.WebRequest):
    """Daphne's request without Twisted's HTML-form decoding.

    Twisted parses every POST's Content-Type with the email package to decode
    form bodies; Daphne never uses the result (it hands the raw body to the
    application), and it was 7% of the gateway's CPU per relayed call.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None) -> None:
        super().write_entry(host, date, redact(request), status, length, ident, user)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gemproxy_site.settings")
    # Daphne builds its access log from this name inside CommandLineInterface.run.
    cli.AccessLogGenerator = RedactingAccessLog
    # Daphne's HTTP factory builds requests from this name.
    http_protocol.WebRequest = RawBodyRequest
    # Here, not in asgi.py: Django's test client relies on the usual receivers.
    from gemproxy_site.handlers import skip_start_of_request_clean_up_for_the_api

    skip_start_of_request_clean_up_for_the_api()
    args = list(sys.argv[1:] if argv is None else argv)
    cli.CommandLineInterface().run([*args, "gemproxy_site.asgi:application"])


if __name__ == "__main__":
    main()
