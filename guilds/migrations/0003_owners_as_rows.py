"""Guilds get a launcher and an organisation as rows, and members as a relation (filled by 0004 from the
legacy ids and the users who joined)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("guilds", "0002_guildfile"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Their indexes go first: renamed, they would keep names the new columns' indexes need.
        migrations.AlterField("guild", "user_id", models.CharField(max_length=128, blank=True, default="")),
        migrations.AlterField("guild", "organization_id", models.CharField(max_length=128, blank=True, default="")),
        migrations.RenameField("guild", "user_id", "legacy_user"),
        migrations.RenameField("guild", "organization_id", "legacy_organization"),
        migrations.AddField(
            model_name="guild",
            name="launched_by",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="launched_guilds", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name="guild",
            name="organization",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="guilds", to="accounts.organization"),
        ),
        migrations.CreateModel(
            name="GuildMember",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("joined_at", models.DateTimeField(auto_now_add=True)),
                ("guild", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="members",
                                            to="guilds.guild")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                           related_name="guild_memberships", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "ordering": ["guild", "joined_at"],
                "constraints": [models.UniqueConstraint(fields=("guild", "user"), name="one_guild_member_row_per_user")],
            },
        ),
    ]
