"""The legacy free-text owner columns go, now that the rows exist; categories may belong to an organisation."""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_owners_as_rows"),
        ("guilds", "0004_owners_from_legacy_ids"),
    ]

    operations = [
        migrations.RemoveField("blueprint", "legacy_author"),
        migrations.RemoveField("blueprint", "legacy_organization"),
        migrations.AddField(
            model_name="category",
            name="organization",
            field=models.ForeignKey(blank=True, help_text="Empty: a site-wide category.", null=True,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="categories",
                                    to="accounts.organization"),
        ),
        migrations.RemoveConstraint(model_name="category", name="catalog_category_unique_name"),
        migrations.AddConstraint(
            model_name="category",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"), condition=models.Q(("organization__isnull", True)),
                name="catalog_category_unique_sitewide_name",
                violation_error_message="A site-wide category with this name already exists."),
        ),
        migrations.AddConstraint(
            model_name="category",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"), models.F("organization"),
                condition=models.Q(("organization__isnull", False)),
                name="catalog_category_unique_name_per_organization",
                violation_error_message="This organisation has a category with this name already."),
        ),
    ]
