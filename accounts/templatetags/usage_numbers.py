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
