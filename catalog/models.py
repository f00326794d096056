"""The catalog: agent classes, categories and blueprints (a blueprint holds a guild spec)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from guildsite.accounts.models import Organization
from guildsite.public_ids import new_public_id


class AgentEntry(models.Model):
    qualified_class_name = models.CharField(max_length=512, unique=True)
    agent_name = models.CharField(max_length=128, blank=True, default="")
    description = models.TextField(blank=True, default="")
    properties_schema = models.JSONField(default=dict, blank=True)
    dependencies = models.JSONField(default=list, blank=True)
    message_handlers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["qualified_class_name"]
        verbose_name = "agent class"
        verbose_name_plural = "agent classes"

    def __str__(self) -> str:
        return self.qualified_class_name


class Category(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="categories", help_text="Empty: a site-wide category.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        # Categories are a small browsing vocabulary: two "Testing" entries in one place would only confuse.
        constraints = [
            models.UniqueConstraint(
                Lower("name"), condition=Q(organization__isnull=True),
                name="catalog_category_unique_sitewide_name",
                violation_error_message="A site-wide category with this name already exists.",
            ),
            models.UniqueConstraint(
                Lower("name"), "organization", condition=Q(organization__isnull=False),
                name="catalog_category_unique_name_per_organization",
                violation_error_message="This organisation has a category with this name already.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Exposure(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"
    ORGANIZATION = "organization", "Organization"
    SHARED = "shared", "Shared"
    # Accepted because the original system's clients send it.
    ORGANIZATION_AND_CHILDREN = "organization_and_children", "Organization and children"


class Blueprint(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="")
    version = models.CharField(max_length=64, blank=True, default="")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="blueprints")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="blueprints")
    exposure = models.CharField(max_length=32, choices=Exposure.choices, default=Exposure.PRIVATE)
    shared_with = models.ManyToManyField(Organization, blank=True, related_name="shared_blueprints",
                                         help_text="Organisations a `shared` blueprint is shared with.")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="blueprints")
    spec = models.JSONField(help_text="A guild spec: name, description, agents, properties, routes.")
    tags = models.JSONField(default=list, blank=True)
    intro_msg = models.TextField(blank=True, default="")
    icon = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()
