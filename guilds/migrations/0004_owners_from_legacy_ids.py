"""Fill the new owner columns of blueprints and guilds, and guild membership, from the legacy free-text
ids (guildsite.accounts.legacy), in one step so one legacy id becomes one row."""

from django.db import migrations

from guildsite.accounts.legacy import legacy_ids_from_owners, owners_from_legacy_ids


def forward(apps, schema_editor):
    owners_from_legacy_ids(apps)


def backward(apps, schema_editor):
    legacy_ids_from_owners(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_owners_as_rows"),
        ("guilds", "0003_owners_as_rows"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
