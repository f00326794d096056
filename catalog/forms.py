"""The spec as a form field: JSON in a textarea, checked with the same rules as the REST API."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.forms.fields import InvalidJSONInput

from guilds.spec import SpecError, validate_guild_spec


class GuildSpecField(forms.JSONField):
    """A guild spec typed as JSON. Every problem is shown on the form as `field.path: message`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"}))
        kwargs.setdefault("help_text", "A guild spec in JSON: name, description, agents, and optionally properties "
                                       "and routes. It is checked like a spec sent to the REST API.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Indented, so a spec of a few agents is readable and editable in the textarea.
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value in self.empty_values:
            return
        try:
            validate_guild_spec(value)
        except SpecError as exc:
            raise forms.ValidationError(
                [f"{field}: {message}" for field, messages in exc.errors.items() for message in messages]
            ) from None
