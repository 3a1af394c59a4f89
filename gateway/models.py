"""What the gateway itself keeps: the model aliases an admin edits."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from gateway.compat.alias_setting import ALIAS_NAME
from gateway.resources import MODEL_ID


def validate_gemini_model(value: str) -> None:
    if not MODEL_ID.fullmatch(value):
        raise ValidationError("A Gemini model id, such as gemini-2.5-flash (lowercase letters, digits, - . _).")


class ModelAlias(models.Model):
    """A model name a foreign client sends, and the Gemini model that serves it."""

    name = models.CharField(
        max_length=128,
        unique=True,
        validators=[RegexValidator(f"^{ALIAS_NAME}$", "Letters, digits, '.', '_', ':' and '-', at most 128.")],
        help_text="The name clients send, e.g. gpt-4o or claude-sonnet-4-5. Overrides GEMPROXY_MODEL_ALIASES.",
    )
    model = models.CharField(
        max_length=128, validators=[validate_gemini_model], help_text="The Gemini model id, e.g. gemini-2.5-flash."
    )
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.name} -> {self.model}"
