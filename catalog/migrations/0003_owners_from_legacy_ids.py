"""Fill the new owner columns from the legacy free-text ids (guildsite.accounts.legacy)."""

from django.db import migrations

from guildsite.accounts.legacy import LegacyOwners


def owners_forward(apps, schema_editor):
    owners = LegacyOwners(apps)
    for blueprint in apps.get_model("catalog", "Blueprint").objects.all():
        blueprint.author = owners.user(blueprint.legacy_author)
        blueprint.organization = owners.organization(blueprint.legacy_organization, blueprint.author)
        blueprint.save(update_fields=["author", "organization"])


def owners_backward(apps, schema_editor):
    for blueprint in apps.get_model("catalog", "Blueprint").objects.select_related("author"):
        blueprint.legacy_author = blueprint.author.username if blueprint.author else ""
        blueprint.legacy_organization = blueprint.organization_id or ""
        blueprint.save(update_fields=["legacy_author", "legacy_organization"])


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_owners_as_rows"),
    ]

    operations = [
        migrations.RunPython(owners_forward, owners_backward),
    ]
