"""Text from requests made fit for a database column and an admin's page.

PostgreSQL refuses NUL in text, UTF-8 cannot encode a lone surrogate, and a
control character, a line separator or a bidirectional override in a model
name or an address garbles the pages that show it. Each becomes U+FFFD (so an
admin still sees that something odd was sent) and the text is cut to its
column's length.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

REPLACEMENT = "\ufffd"

# C0 and C1 controls with DEL, surrogates, line/paragraph separators, bidi embeddings, overrides and isolates.
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def storable(value: object, max_length: int | None = None) -> str:
    """``value`` as text any database and page can hold, at most ``max_length`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if _UNFIT.search(text):
        text = _UNFIT.sub(REPLACEMENT, text)
    return text[:max_length] if max_length is not None else text


_MESSAGE = "Control characters (such as NUL), line separators and bidirectional overrides are not allowed here."


def validate_one_line(value: str) -> None:
    """For a name typed into a form: refuse what ``storable`` would have to replace, and say why."""
    if _UNFIT.search(value or ""):
        raise ValidationError(_MESSAGE, code="unfit_characters")


def validate_lines(value: str) -> None:
    """Like ``validate_one_line``, for a list typed into a text area: tabs and line breaks are fine."""
    if _UNFIT.search((value or "").translate(_LINE_BREAKS)):
        raise ValidationError(_MESSAGE, code="unfit_characters")


_LINE_BREAKS = str.maketrans("\t\r\n", "   ")
