"""Blueprints get an author and an organisation as rows (filled by 0003 from the legacy ids) and
may be shared with organisations."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("catalog", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Their indexes go first: renamed, they would keep names the new columns' indexes need.
        migrations.AlterField("blueprint", "author_id", models.CharField(max_length=128)),
        migrations.AlterField("blueprint", "organization_id", models.CharField(max_length=128, blank=True, default="")),
        migrations.RenameField("blueprint", "author_id", "legacy_author"),
        migrations.RenameField("blueprint", "organization_id", "legacy_organization"),
        migrations.AlterField("blueprint", "legacy_author", models.CharField(max_length=128, blank=True, default="")),
        migrations.AlterField("blueprint", "legacy_organization", models.CharField(max_length=128, blank=True, default="")),
        migrations.AddField(
            model_name="blueprint",
            name="author",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="blueprints", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name="blueprint",
            name="organization",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="blueprints", to="accounts.organization"),
        ),
        migrations.AddField(
            model_name="blueprint",
            name="shared_with",
            field=models.ManyToManyField(blank=True, help_text="Organisations a `shared` blueprint is shared with.",
                                         related_name="shared_blueprints", to="accounts.organization"),
        ),
    ]
