"""The catalog: agent classes, categories and blueprints (a blueprint holds a guild spec)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        # Categories are a small browsing vocabulary: two "Testing" entries would only confuse.
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="catalog_category_unique_name",
                violation_error_message="A category with this name already exists.",
            )
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
    author_id = models.CharField(max_length=128, db_index=True)
    organization_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    exposure = models.CharField(max_length=32, choices=Exposure.choices, default=Exposure.PRIVATE)
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
