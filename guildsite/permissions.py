"""Who may do what: the one permission layer that views, consumers, services and the admin call.

Rules (README "Organisations and permissions"):
- Across organisations, not found beats forbidden: what an actor may not even see is `NotFound`
  (404 / 4404), so ids do not leak. A visible object with a forbidden action is `Forbidden` (403 / 4403).
- Roles per organisation: viewer < member < admin. Superusers act as admin everywhere. An API key
  acts as its creator, in the key's organisation only, at most at the key's scope (read = viewer,
  write = member), and never as staff.
- Development (AUTH_DISABLED=1) keeps the open catalog of the seed: a named user acts as at least a
  member of every organisation and may read, launch and edit every blueprint; guild rules (files,
  history, stop) still hold. A request that names no user is not limited at all.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from catalog.models import Blueprint, Category, Exposure
from guilds.models import Guild, GuildMember, Run, Thread
from guildsite.accounts.models import Membership, Organization, Role, lower_role, role_at_least
from guildsite.identity import Actor


class PermissionProblem(Exception):
    """Refused; the message says why (for the error body or frame)."""


class NotFound(PermissionProblem):
    """The actor may not know the object exists."""


class Forbidden(PermissionProblem):
    """The actor sees the object but may not do this."""


# --- roles -----------------------------------------------------------------------------------


def _unlimited(actor: Actor) -> bool:
    """Superusers, and development requests that name no user."""
    return actor.is_superuser or (actor.development and actor.user is None)


def roles(actor: Actor) -> dict[str, str]:
    """The actor's role per organisation id, from its memberships (capped by an API key)."""
    if "roles" not in actor.memo:
        found: dict[str, str] = {}
        if actor.user is not None:
            for organization_id, role in Membership.objects.filter(user=actor.user).values_list("organization_id", "role"):
                found[organization_id] = role
        if actor.api_key is not None:
            key_org = actor.api_key.organization_id
            capped = lower_role(found.get(key_org), actor.key_role)
            found = {key_org: capped} if capped else {}
        actor.memo["roles"] = found
    return actor.memo["roles"]


def organization_role(actor: Actor, organization_id: str | None) -> str | None:
    """The role that counts for `actor` in an organisation (None: not in it)."""
    if _unlimited(actor):
        return Role.ADMIN
    if not organization_id:
        return None
    role = roles(actor).get(organization_id)
    if actor.development and actor.api_key is None:
        return Role.MEMBER if role in (None, Role.VIEWER) else role
    return role


def _real_admin(actor: Actor, organization_id: str | None) -> bool:
    """Admin by a membership (development's member floor grants no admin rights; a key caps below admin)."""
    return _unlimited(actor) or (bool(organization_id) and roles(actor).get(organization_id) == Role.ADMIN)


def sees_every_organization(actor: Actor) -> bool:
    return _unlimited(actor)


def organization_ids_with(actor: Actor, at_least: str) -> list[str]:
    return [org for org, role in roles(actor).items() if role_at_least(role, at_least)]


def _open_catalog(actor: Actor) -> bool:
    return actor.development or _unlimited(actor)


def require_role(actor: Actor, organization_id: str | None, at_least: str, *, doing: str) -> None:
    """NotFound when the actor is not in the organisation, Forbidden when its role is too low."""
    role = organization_role(actor, organization_id)
    if role is None:
        raise NotFound(f"organisation '{organization_id}' not found")
    if not role_at_least(role, at_least):
        raise Forbidden(f"{doing} needs the role {at_least} in {organization_id} (you are {role})")


def require_staff(actor: Actor, *, doing: str) -> None:
    if not (actor.is_staff or _unlimited(actor) or (actor.development and actor.api_key is None)):
        raise Forbidden(f"{doing} needs site staff")


# --- organisations -------------------------------------------------------------------------


def organization_read_check(actor: Actor, organization_id: str) -> str:
    """The actor's role there (by membership); NotFound when it has none."""
    if _unlimited(actor):
        return Role.ADMIN
    role = roles(actor).get(organization_id)
    if role is None:
        raise NotFound(f"organisation '{organization_id}' not found")
    return role


def organization_follow_check(actor: Actor, organization_id: str) -> None:
    """Following an organisation's events on the live socket: anyone who sees its guilds."""
    if not Organization.objects.filter(pk=organization_id).exists():
        raise NotFound(f"organisation '{organization_id}' not found")
    if organization_role(actor, organization_id) is None:
        raise NotFound(f"organisation '{organization_id}' not found")


def visible_organization_ids(actor: Actor) -> frozenset[str] | None:
    """The organisations whose guilds the actor sees (guild_queryset's); None: every one."""
    if _open_catalog(actor):
        return None
    return frozenset(organization_ids_with(actor, Role.VIEWER))


def budget_organization_ids(actor: Actor) -> frozenset[str] | None:
    """The organisations whose budgets (and their guilds') the actor reads (budget_check's); None: every one."""
    if _unlimited(actor):
        return None
    return frozenset(org for org, role in roles(actor).items() if role == Role.ADMIN)


def organization_admin_check(actor: Actor, organization_id: str, *, doing: str) -> None:
    role = organization_read_check(actor, organization_id)
    if actor.api_key is not None:
        raise Forbidden(f"{doing} needs a signed-in admin: API keys never manage members or keys")
    if role != Role.ADMIN:
        raise Forbidden(f"{doing} needs the role admin in {organization_id}")


# --- catalog -------------------------------------------------------------------------------


def agent_register_check(actor: Actor) -> None:
    require_staff(actor, doing="registering an agent class")


def category_queryset(actor: Actor, categories: QuerySet[Category]) -> QuerySet[Category]:
    if _open_catalog(actor):
        return categories
    return categories.filter(Q(organization__isnull=True) | Q(organization_id__in=organization_ids_with(actor, Role.VIEWER)))


def category_create_check(actor: Actor, organization_id: str | None) -> None:
    if not organization_id:
        require_staff(actor, doing="creating a site-wide category")
        return
    require_role(actor, organization_id, Role.MEMBER, doing="creating a category")


def blueprint_queryset(actor: Actor, blueprints: QuerySet[Blueprint]) -> QuerySet[Blueprint]:
    """The blueprints the actor may read."""
    if _open_catalog(actor):
        return blueprints
    if actor.user is None:
        return blueprints.none()
    readers = organization_ids_with(actor, Role.VIEWER)
    writers = organization_ids_with(actor, Role.MEMBER)
    admins = organization_ids_with(actor, Role.ADMIN)
    shared_in = Blueprint.shared_with.through.objects.filter(organization_id__in=readers).values("blueprint_id")
    visible = (
        Q(exposure__in=[Exposure.ORGANIZATION, Exposure.ORGANIZATION_AND_CHILDREN, Exposure.SHARED],
          organization_id__in=readers)
        | Q(exposure=Exposure.SHARED, pk__in=shared_in)
        | Q(exposure=Exposure.PRIVATE, organization_id__in=admins)
    )
    # Its author keeps a private blueprint while still a member of its organisation (a key: of the key's).
    visible |= Q(exposure=Exposure.PUBLIC) | Q(exposure=Exposure.PRIVATE, author=actor.user,
                                               organization_id__in=writers)
    return blueprints.filter(visible)


def blueprint_read_check(actor: Actor, blueprint: Blueprint) -> None:
    if not blueprint_queryset(actor, Blueprint.objects.filter(pk=blueprint.pk)).exists():
        raise NotFound(f"Blueprint '{blueprint.pk}' not found.")


def blueprint_create_check(actor: Actor, organization_id: str) -> None:
    require_role(actor, organization_id, Role.MEMBER, doing="creating a blueprint")


def blueprint_change_check(actor: Actor, blueprint: Blueprint, *, doing: str = "changing this blueprint") -> None:
    """Its author (with a member's rights there) or an admin of its organisation."""
    blueprint_read_check(actor, blueprint)
    if not may_change_readable_blueprint(actor, blueprint):
        raise Forbidden(f"{doing} needs its author or an admin of {blueprint.organization_id}")


def may_change_readable_blueprint(actor: Actor, blueprint: Blueprint) -> bool:
    """blueprint_change_check's rule for a blueprint already read through blueprint_queryset (a list's rows):
    no query per blueprint."""
    if _open_catalog(actor):
        return True
    role = organization_role(actor, blueprint.organization_id)
    is_author = actor.user is not None and blueprint.author_id == actor.user.pk
    # The author, while a member there (one removed from the organisation loses the blueprint).
    return role_at_least(role, Role.ADMIN) or (is_author and role_at_least(role, Role.MEMBER))


def blueprint_launch_check(actor: Actor, blueprint: Blueprint, organization_id: str) -> None:
    """May the actor launch this blueprint into that organisation?"""
    blueprint_read_check(actor, blueprint)
    require_role(actor, organization_id, Role.MEMBER, doing="launching a guild")
    if _open_catalog(actor) or blueprint.exposure == Exposure.PUBLIC:
        return
    allowed = {blueprint.organization_id}
    if blueprint.exposure == Exposure.SHARED:
        allowed |= set(blueprint.shared_with.values_list("pk", flat=True))
    if organization_id not in allowed:
        raise Forbidden(f"blueprint '{blueprint.pk}' ({blueprint.exposure}) can be launched only into "
                        f"{', '.join(sorted(o for o in allowed if o))}")


# --- guilds --------------------------------------------------------------------------------


def guild_queryset(actor: Actor, guilds: QuerySet[Guild]) -> QuerySet[Guild]:
    if _open_catalog(actor):
        return guilds
    return guilds.filter(organization_id__in=organization_ids_with(actor, Role.VIEWER))


def guild_read_check(actor: Actor, guild: Guild) -> None:
    """Detail, lists and the system socket: anyone in the guild's organisation."""
    if _open_catalog(actor):
        return
    if organization_role(actor, guild.organization_id) is None:
        raise NotFound(f"Guild '{guild.pk}' not found.")


def guild_join_check(actor: Actor, guild: Guild) -> None:
    """The user socket (chat): members of the organisation; viewers only watch."""
    guild_read_check(actor, guild)
    if not role_at_least(organization_role(actor, guild.organization_id), Role.MEMBER):
        raise Forbidden("viewers may watch a guild but not join it: chat needs the role member")


def _is_launcher(actor: Actor, guild: Guild) -> bool:
    return actor.user is not None and guild.launched_by_id == actor.user.pk


def _is_guild_member(actor: Actor, guild: Guild) -> bool:
    return actor.user is not None and GuildMember.objects.filter(guild=guild, user=actor.user).exists()


def guild_control_check(actor: Actor, guild: Guild, *, doing: str) -> None:
    """Stop and relaunch: the launcher and the organisation's admins."""
    guild_read_check(actor, guild)
    if _unlimited(actor) or _real_admin(actor, guild.organization_id):
        return
    if _is_launcher(actor, guild) and role_at_least(organization_role(actor, guild.organization_id), Role.MEMBER):
        return
    raise Forbidden(f"{doing} is for the guild's launcher and the admins of its organisation")


def guild_files_check(actor: Actor, guild: Guild) -> None:
    """A guild's files: its members (launcher and users who joined) and the organisation's admins."""
    guild_read_check(actor, guild)
    if _unlimited(actor) or _real_admin(actor, guild.organization_id) or _is_guild_member(actor, guild):
        return
    raise Forbidden(f"files of guild {guild.pk} are for its members: join it first")


def guild_file_upload_check(actor: Actor, guild: Guild) -> None:
    """Adding a file: a member of the guild who may still write there (a viewer, or a read key, only reads)."""
    guild_files_check(actor, guild)
    if not role_at_least(organization_role(actor, guild.organization_id), Role.MEMBER):
        raise Forbidden("adding files needs the role member (a viewer or a read-only key only reads them)")


def guild_file_delete_check(actor: Actor, guild: Guild, uploaded_by: str) -> None:
    """Deleting a file: whoever uploaded it (still a member), the launcher and the organisation's admins."""
    guild_file_upload_check(actor, guild)
    if _unlimited(actor) or _real_admin(actor, guild.organization_id) or _is_launcher(actor, guild):
        return
    if actor.username == uploaded_by:
        return
    raise Forbidden(f"only {uploaded_by}, the guild's launcher or an admin may delete this file")


def guild_history_check(actor: Actor, guild: Guild, username: str) -> None:
    """A user's messages: that user; the launcher and admins read anyone's."""
    guild_read_check(actor, guild)
    if _unlimited(actor) or actor.username == username or _is_launcher(actor, guild) or _real_admin(actor, guild.organization_id):
        return
    raise Forbidden(f"only {username}, the guild's launcher or an admin of its organisation may read {username}'s messages")


def guild_messages_browse_check(actor: Actor, guild: Guild) -> None:
    """Every topic of a guild (its agents' talk, every user's messages): the launcher and the organisation's
    admins, who may already read each user's history (guild_history_check)."""
    guild_read_check(actor, guild)
    if _unlimited(actor) or _is_launcher(actor, guild) or _real_admin(actor, guild.organization_id):
        return
    raise Forbidden(f"browsing guild {guild.pk}'s messages is for its launcher and the admins of its organisation")


# --- threads and runs (LLM agents) ----------------------------------------------------------


def thread_queryset(actor: Actor, threads: QuerySet[Thread]) -> QuerySet[Thread]:
    """A thread is its user's alone (admins included: the Django admin is where an admin reads others'),
    and only while they may still see its organisation's guilds."""
    if actor.user is None:
        return threads.none()
    return threads.filter(user=actor.user, guild__in=guild_queryset(actor, Guild.objects.all()))


def thread_write_check(actor: Actor, thread: Thread, *, doing: str) -> None:
    """Renaming or deleting one's thread: a viewer (or a read-only key) only reads."""
    if _open_catalog(actor):
        return
    if not role_at_least(organization_role(actor, thread.guild.organization_id), Role.MEMBER):
        raise Forbidden(f"{doing} needs the role member (a viewer or a read-only key only reads)")


def run_queryset(actor: Actor, runs: QuerySet[Run]) -> QuerySet[Run]:
    """Runs are read like their guild's detail: anyone who sees the guild (its organisation's viewers and up)."""
    return runs.filter(guild__in=guild_queryset(actor, Guild.objects.all()))


def run_messages_visible(actor: Actor, run: Run) -> bool:
    """A run's conversation is its requester's history: theirs, the launcher's and the organisation's admins'."""
    thread = run.thread
    if thread is None:
        return False
    if _unlimited(actor) or _is_launcher(actor, run.guild) or _real_admin(actor, run.guild.organization_id):
        return True
    return actor.user is not None and (thread.user_id == actor.user.pk or thread.requester == actor.username)


def run_cancel_check(actor: Actor, run: Run) -> None:
    """Cancelling a run: whoever asked for it (still a member of the organisation), the guild's launcher and
    the organisation's admins. The caller has found the run (run_queryset)."""
    if _unlimited(actor) or _real_admin(actor, run.guild.organization_id):
        return
    if not role_at_least(organization_role(actor, run.guild.organization_id), Role.MEMBER):
        raise Forbidden("cancelling a run needs the role member (a viewer or a read-only key only reads)")
    thread = run.thread
    asked = actor.user is not None and (run.requester == actor.username or (thread is not None and (
        thread.user_id == actor.user.pk or thread.requester == actor.username)))
    if not (asked or _is_launcher(actor, run.guild)):
        raise Forbidden("a run is cancelled by whoever asked for it, the guild's launcher or an admin")


def budget_check(actor: Actor, organization_id: str, *, doing: str) -> None:
    """Budgets (an organisation's, or one of its guilds'): its admins. NotFound outside the organisation."""
    role = organization_read_check(actor, organization_id)
    if role != Role.ADMIN:
        raise Forbidden(f"{doing} needs the role admin in {organization_id}")


def guild_message_send_check(actor: Actor, guild: Guild) -> None:
    """Posting a message as the caller: what opening the user socket needs (a member of the organisation)."""
    guild_join_check(actor, guild)


def admin_organization_ids(actor: Actor) -> list[str] | None:
    """For the Django admin: None (everything) for superusers, else the organisations the user administers."""
    if actor.is_superuser:
        return None
    return organization_ids_with(actor, Role.ADMIN)


# --- external agents -----------------------------------------------------------------------


def external_agent_read_check(actor: Actor, organization_id: str) -> None:
    """Viewers of its organisation read an external agent, its status and its commands; others get a 404."""
    if organization_role(actor, organization_id) is None:
        raise NotFound("external agent not found")


def external_agent_command_check(actor: Actor, organization_id: str) -> None:
    require_role(actor, organization_id, Role.MEMBER, doing="sending a command to an external agent")


def external_agent_manage_check(actor: Actor, organization_id: str, *, doing: str) -> None:
    """Registering and deleting: the organisation's admins, signed in (an agent's key is an API key)."""
    organization_admin_check(actor, organization_id, doing=doing)
