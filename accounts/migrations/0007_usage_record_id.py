from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_usage_refused_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerecord",
            name="record_id",
            field=models.CharField(blank=True, editable=False, max_length=32, null=True, unique=True),
        ),
    ]
