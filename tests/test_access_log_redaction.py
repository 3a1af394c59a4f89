"""The access log never shows a secret query parameter, however its name is spelled, nor a forged line."""

from __future__ import annotations

import datetime
import io
import logging
import string

import pytest
from daphne.access import AccessLogGenerator
from hypothesis import assume, given
from hypothesis import strategies as st

from gemproxy_site.access_log import RedactingAccessLog, escape, is_secret_parameter, loggable

SECRET_NAMES = ["key", "token", "api_key", "apiKey", "access_token", "x-goog-api-key", "upload_id", "password"]
PLAIN_NAMES = ["alt", "pageSize", "pageToken", "model", "keyword", "tokens", "x"]


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        ("GET /me/welcome/gpi_secret_value/", "GET /me/welcome/REDACTED"),
        ("POST /me/welcome/gpi_secret_value/", "POST /me/welcome/REDACTED"),
        ("GET /me/%77elcome/gpi_secret_value/", "GET /me/welcome/REDACTED"),
        ("GET /me/welcome/gpi_secret_value/?key=gpk_secret_value", "GET /me/welcome/REDACTED?key=REDACTED"),
        ("GET http://gw.example.com/me/welcome/gpi_secret_value", "GET http://gw.example.com/me/welcome/REDACTED"),
    ],
)
def test_a_sign_in_link_in_the_path_is_redacted(line: str, logged: str) -> None:
    assert loggable(line) == logged


def test_other_member_pages_stay_readable() -> None:
    assert loggable("GET /me/login/?next=/me/") == "GET /me/login/?next=/me/"


@pytest.mark.parametrize(
    "spelling",
    ["key", "%6Bey", "k%65y", "%6b%65%79", "KEY", "Key", "key%00", "%00key", "k+ey", "key+", "api_key", "API-KEY"],
)
def test_a_key_is_redacted_whatever_the_spelling_of_its_name(spelling: str) -> None:
    line = loggable(f"GET /v1beta/models?alt=json&{spelling}=gpk_secret_value&pageSize=5")

    assert "gpk_secret_value" not in line
    assert line == f"GET /v1beta/models?alt=json&{spelling}=REDACTED&pageSize=5"


@pytest.mark.parametrize("name", ["pageToken", "alt", "keyword", "monkey_business", "tokens"])
def test_ordinary_parameters_stay_readable(name: str) -> None:
    assert not is_secret_parameter(name)
    assert loggable(f"GET /v1beta/models?{name}=abc") == f"GET /v1beta/models?{name}=abc"


def test_a_path_without_a_query_is_kept_as_sent() -> None:
    assert loggable("POST /v1beta/models/gemini-2.5-flash:generateContent") == (
        "POST /v1beta/models/gemini-2.5-flash:generateContent"
    )


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("GET /a\r\n127.0.0.1 - - forged", "GET /a\\x0d\\x0a127.0.0.1 - - forged"),
        ('GET /a" 200 1 "x', "GET /a\\x22 200 1 \\x22x"),
        ("GET /\x1b[31mred", "GET /\\x1b[31mred"),
        ("GET /\u2028", "GET /\\u2028"),
        ("GET /a\\b", "GET /a\\x5cb"),
        ("GET /\x7f", "GET /\\x7f"),
        ("GET /\tx", "GET /\\x09x"),
        ("GET /caf\u00e9", "GET /caf\\xe9"),
        ("GET /plain?alt=sse", "GET /plain?alt=sse"),
    ],
)
def test_control_characters_and_quotes_are_escaped(raw: str, logged: str) -> None:
    assert loggable(raw) == logged


def _any_spelling(name: str) -> st.SearchStrategy[str]:
    """``name`` as a client could send it: each character raw or percent-encoded, any case."""

    def character(char: str) -> st.SearchStrategy[str]:
        encoded = f"%{ord(char):02X}"
        forms = {char, char.upper(), char.lower(), encoded, encoded.lower(), f"%{ord(char.upper()):02x}"}
        if char == "_":
            forms |= {"-", "+", "%20"}
        return st.sampled_from(sorted(forms))

    return st.tuples(*(character(char) for char in name)).map("".join)


_VALUE = st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=20)
_SECRET = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=40)
_PLAIN_FIELD = st.tuples(st.sampled_from(PLAIN_NAMES), _VALUE).map("=".join)


@given(
    name=st.sampled_from(SECRET_NAMES).flatmap(_any_spelling),
    secret=_SECRET,
    before=st.lists(_PLAIN_FIELD, max_size=3),
    after=st.lists(_PLAIN_FIELD, max_size=3),
)
def test_no_spelling_of_a_secret_name_lets_its_value_into_the_log(
    name: str, secret: str, before: list[str], after: list[str]
) -> None:
    plain = "&".join(before + after)
    assume(secret not in plain)
    query = "&".join([*before, f"{name}={secret}", *after])

    line = loggable(f"GET /v1beta/models?{query}")

    assert secret not in line
    assert line.endswith("&".join([*before, f"{name}=REDACTED", *after]))


@given(st.text())
def test_a_logged_request_line_is_one_line_of_printable_ascii(text: str) -> None:
    assert all(" " <= char <= "~" for char in escape(loggable(text)))


def test_djangos_log_of_a_failed_request_does_not_carry_a_sign_in_token() -> None:
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    request_log = logging.getLogger("django.request")
    request_log.addHandler(capture)
    try:
        try:
            raise RuntimeError("the welcome page failed")
        except RuntimeError:
            request_log.error("%s: %s", "Internal Server Error", "/me/welcome/gpi_secret-token/", exc_info=True)
    finally:
        request_log.removeHandler(capture)

    assert [record.getMessage() for record in records] == ["Internal Server Error: /me/welcome/REDACTED"]


def test_a_line_reads_as_daphne_writes_it_with_the_time_of_its_own_second() -> None:
    ours, daphne = io.StringIO(), io.StringIO()
    first = datetime.datetime(2026, 12, 2, 21, 5, 9, 100)
    for date in (first, first.replace(microsecond=999_999), first.replace(second=10), first.replace(day=3)):
        RedactingAccessLog(ours).write_entry("127.0.0.1:5", date, "GET /healthz", 200, 12)
        AccessLogGenerator(daphne).write_entry("127.0.0.1:5", date, "GET /healthz", 200, 12)
    shared = RedactingAccessLog(io.StringIO())
    lines = []
    for date in (first, first.replace(microsecond=999_999), first.replace(second=10), first.replace(day=3)):
        shared.stream = io.StringIO()
        shared.write_entry("127.0.0.1:5", date, "POST /v1beta/models/m:generateContent?key=gpk_x")
        lines.append(shared.stream.getvalue())
    assert ours.getvalue() == daphne.getvalue()
    assert [line.split("[")[1].split("]")[0] for line in lines] == [
        "02/Dec/2026:21:05:09",
        "02/Dec/2026:21:05:09",
        "02/Dec/2026:21:05:10",
        "03/Dec/2026:21:05:09",
    ]
    assert (
        lines[0] == '127.0.0.1:5 - - [02/Dec/2026:21:05:09] "POST /v1beta/models/m:generateContent?key=REDACTED" - -\n'
    )
