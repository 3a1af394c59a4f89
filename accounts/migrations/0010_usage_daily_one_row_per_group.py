"""One rollup row per group, so that the writer adds a batch with one upsert per group (issue 12).

Rows a race between processes split in two are merged first: every reader sums them, so the sums stay.
"""

from django.conf import settings
from django.db import migrations, models
from django.db.models.functions import Coalesce

SUMMED = (
    "requests",
    "prompt_tokens",
    "candidates_tokens",
    "thoughts_tokens",
    "cached_tokens",
    "request_bytes",
    "response_bytes",
    "latency_ms",
)


def merge_split_rows(apps, schema_editor) -> None:
    UsageDaily = apps.get_model("accounts", "UsageDaily")
    rows = UsageDaily.objects.using(schema_editor.connection.alias)
    split = (
        rows.values("day", "user_id", "key_id", "model", "outcome")
        .annotate(copies=models.Count("pk"))
        .filter(copies__gt=1)
        .order_by()
    )
    for group in split:
        group.pop("copies")
        first, *others = rows.filter(**group).order_by("pk")
        for other in others:
            for name in SUMMED:
                setattr(first, name, getattr(first, name) + getattr(other, name))
        first.save(update_fields=SUMMED)
        rows.filter(pk__in=[other.pk for other in others]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_usage_record_id"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(merge_split_rows, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="usagedaily", name="usage_daily_group"),
        migrations.AddConstraint(
            model_name="usagedaily",
            constraint=models.UniqueConstraint(
                models.F("day"),
                Coalesce(models.F("user"), models.Value(0)),
                Coalesce(models.F("key"), models.Value(0)),
                models.F("model"),
                models.F("outcome"),
                name="usage_daily_one_row_per_group",
            ),
        ),
    ]
