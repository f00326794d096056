"""The naming rules for users and organisations, the same at every edge.

A user id (a username) appears in socket URLs, launch bodies, topic names and proxy ids, so it
is limited to characters that need no escaping there. An organisation's id is a slug, so the
seed's `organization_id` ("testorg456") names one directly.
"""

from __future__ import annotations

import re
import unicodedata

USER_ID_PATTERN = r"^[A-Za-z0-9_.@+-]{1,128}$"
USER_ID_RULE = "1-128 characters of letters, digits and _ . @ + -"
DISPLAY_NAME_MAX = 64
ORGANIZATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
ORGANIZATION_ID_RULE = "2-63 characters of lower-case letters, digits and '-', not starting with '-'"

_USER_ID = re.compile(USER_ID_PATTERN)
_ORGANIZATION_ID = re.compile(ORGANIZATION_ID_PATTERN)


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None


def is_display_name(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= DISPLAY_NAME_MAX and value.isprintable() and bool(value.strip())


def account_display_name(user) -> str:
    """How a signed-in person appears to others: their full name, else their user id (cut to a display name's
    length). Pages and sockets both say it: nobody appears under a name they typed."""
    return ((user.get_full_name() or "").strip() or user.get_username())[:DISPLAY_NAME_MAX]


def is_organization_id(value: object) -> bool:
    return isinstance(value, str) and _ORGANIZATION_ID.fullmatch(value) is not None


def organization_slug(text: str) -> str:
    """A valid organisation id made from a name or a free-text id ("Acme Labs" -> "acme-labs")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:63].rstrip("-")
    if len(slug) < 2:  # "" or one character: still a usable id
        slug = f"org-{slug}".rstrip("-")
    return slug


def user_id_from(text: str) -> str:
    """A valid user id made from free text (for ids stored before the rule existed)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@+-]", "_", text.strip())[:128]
    return cleaned or "user"
