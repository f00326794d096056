"""Fill the new owner columns from the legacy free-text ids (guildsite.accounts.legacy)."""

from django.db import migrations

from guildsite.accounts.legacy import LegacyOwners


def owners_forward(apps, schema_editor):
    owners = LegacyOwners(apps)
    members = apps.get_model("guilds", "GuildMember")
    proxies = apps.get_model("guilds", "GuildAgent").objects.filter(kind="human")
    for guild in apps.get_model("guilds", "Guild").objects.all():
        guild.launched_by = owners.user(guild.legacy_user)
        guild.organization = owners.organization(guild.legacy_organization, guild.launched_by)
        guild.save(update_fields=["launched_by", "organization"])
        joined = [owners.user(str((proxy.spec.get("properties") or {}).get("user_id") or ""))
                  for proxy in proxies.filter(guild=guild)]
        for user in {u.pk: u for u in [guild.launched_by, *joined] if u is not None}.values():
            members.objects.get_or_create(guild=guild, user=user)
            if guild.organization is not None:
                owners.memberships.objects.get_or_create(user=user, organization=guild.organization,
                                                         defaults={"role": "member"})


def owners_backward(apps, schema_editor):
    for guild in apps.get_model("guilds", "Guild").objects.select_related("launched_by"):
        guild.legacy_user = guild.launched_by.username if guild.launched_by else ""
        guild.legacy_organization = guild.organization_id or ""
        guild.save(update_fields=["legacy_user", "legacy_organization"])


class Migration(migrations.Migration):

    dependencies = [
        ("guilds", "0003_owners_as_rows"),
    ]

    operations = [
        migrations.RunPython(owners_forward, owners_backward),
    ]
