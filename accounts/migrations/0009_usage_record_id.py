from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_usage_requested_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerecord",
            name="record_id",
            field=models.CharField(blank=True, editable=False, max_length=32, null=True, unique=True),
        ),
    ]
