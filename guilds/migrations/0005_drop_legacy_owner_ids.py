"""The legacy free-text owner columns go, now that the rows exist."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("guilds", "0004_owners_from_legacy_ids"),
    ]

    operations = [
        migrations.RemoveField("guild", "legacy_user"),
        migrations.RemoveField("guild", "legacy_organization"),
    ]
