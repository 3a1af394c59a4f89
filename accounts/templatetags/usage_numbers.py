"""Numbers as the usage pages show them: 1.2k tokens, 3.4% failed."""

from __future__ import annotations

from django import template

from accounts.charts import human

register = template.Library()


@register.filter
def tokens(value) -> str:
    return human(value or 0)


@register.filter
def percent(value) -> str:
    return f"{(value or 0) * 100:.1f}%"


@register.filter
def grouped(value) -> str:
    """Exact, with thousands grouped: 499,985."""
    return f"{int(value or 0):,}"


@register.filter
def duration(seconds) -> str:
    """A wait as people say it: 42 s, 7 min, 3 h 05 min."""
    seconds = int(seconds or 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{-(-seconds // 60)} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min"
