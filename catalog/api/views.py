"""Catalog endpoints (seed 000, Phase 1 and 2.1). Each view parses, calls one service or selector, formats."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.api import serializers as s
from catalog.seed import SEED_BLUEPRINT_REQUEST, SEED_ECHO_AGENT
from guilds.runtime.registry import AgentClassError
from guilds.spec import SpecError
from guildsite import idempotency, permissions
from guildsite.accounts.models import Organization
from guildsite.api_common import LIST_PARAMETERS, list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.idempotency import idempotent, scope_of
from guildsite.identity import Actor, acting_organization_id, acting_user, actor_of


class CatalogApi(APIView):
    # JSON only: another content type is a 415, not a half-parsed form.
    parser_classes = [JSONParser]


def _spec_invalid(exc: SpecError) -> exceptions.ValidationError:
    return exceptions.ValidationError(exc.errors)


def _organization_or_404(organization_id: str) -> Organization:
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise exceptions.NotFound(f"organisation '{organization_id}' not found")
    return organization


def _category_fits(category, organization: Organization | None) -> None:
    """A blueprint's category is site-wide or its own organisation's (another's would show its name)."""
    if category is not None and category.organization_id not in (None, organization.pk if organization else None):
        raise exceptions.ValidationError({"category_id": [f"Invalid pk \"{category.pk}\" - object does not exist."]})


def _organization_to_write(actor: Actor, user, named: str | None, *, field: str, doing: str) -> Organization:
    """The organisation a blueprint goes to: named or the user's first, where the actor is a member."""
    organization_id = acting_organization_id(actor, user, named, field=field)
    permissions.require_role(actor, organization_id, "member", doing=doing)
    return _organization_or_404(organization_id)


# --- agents ----------------------------------------------------------------


class AgentListCreateApi(CatalogApi):
    @extend_schema(
        operation_id="registerAgent",
        summary="Register an agent class",
        request=s.AgentEntryCreateSerializer,
        responses={201: s.AgentEntrySerializer, **problem_responses(400, 409, 415)},
        examples=[
            OpenApiExample(
                "Seed 000: the EchoAgent",
                request_only=True,
                value={
                    "qualified_class_name": SEED_ECHO_AGENT,
                    "description": "Agent that echoes messages back to the sender",
                    "properties_schema": {},
                    "dependencies": [],
                },
            )
        ],
        tags=["catalog: agents"],
    )
    def post(self, request: Request) -> Response:
        permissions.agent_register_check(actor_of(request))
        body = s.AgentEntryCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            entry = services.agent_entry_register(**body.validated_data)
        except AgentClassError as exc:
            raise exceptions.ValidationError({"qualified_class_name": [str(exc)]}) from None
        except services.AgentEntryExists as exc:
            raise Conflict(str(exc)) from None
        return Response(s.AgentEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="getAgents",
        summary="List registered agent classes",
        parameters=[
            OpenApiParameter(
                "class_names", OpenApiTypes.STR, many=True, explode=True,
                description="Only these qualified class names (repeat the parameter for several).",
            ),
            *LIST_PARAMETERS,
        ],
        responses={200: s.AgentEntrySerializer(many=True), **problem_responses(400)},
        tags=["catalog: agents"],
    )
    def get(self, request: Request) -> Response:
        entries = selectors.agent_entry_list(class_names=request.query_params.getlist("class_names"))
        return list_response(request, entries, s.AgentEntrySerializer)


class AgentDetailApi(CatalogApi):
    @extend_schema(
        operation_id="getAgentByClassName",
        summary="One agent class by its qualified class name",
        responses={200: s.AgentEntrySerializer, **problem_responses(404)},
        tags=["catalog: agents"],
    )
    def get(self, request: Request, qualified_class_name: str) -> Response:
        entry = selectors.agent_entry_get(qualified_class_name=qualified_class_name)
        if entry is None:
            raise exceptions.NotFound(f"Agent with qualified class name '{qualified_class_name}' not found.")
        return Response(s.AgentEntrySerializer(entry).data)


# --- categories ------------------------------------------------------------


class CategoryListCreateApi(CatalogApi):
    @extend_schema(
        operation_id="createCategory",
        summary="Create a category",
        description=(
            "Names are unique (ignoring case) within an organisation, and among site-wide categories. "
            "Sending a name that exists there with the same description answers 200 with the existing id, "
            "so a retried request is harmless; with another description it is a 409. Without "
            "`organization_id` the category is site-wide, which needs site staff."
        ),
        request=s.CategoryCreateSerializer,
        responses={
            201: s.IdSerializer,
            200: OpenApiResponse(s.IdSerializer, description="The same category existed already."),
            **problem_responses(400, 409, 415),
        },
        examples=[
            OpenApiExample(
                "Seed 000",
                request_only=True,
                value={"name": "Testing", "description": "Category for integration testing blueprints"},
            )
        ],
        tags=["catalog: categories"],
    )
    def post(self, request: Request) -> Response:
        body = s.CategoryCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization_id = data.pop("organization_id", None) or None
        permissions.category_create_check(actor_of(request), organization_id)
        organization = _organization_or_404(organization_id) if organization_id else None
        try:
            category, created = services.category_create(**data, organization=organization)
        except services.CategoryNameTaken as exc:
            raise Conflict(str(exc)) from None
        return Response({"id": category.id}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="listCategories",
        summary="List categories",
        parameters=LIST_PARAMETERS,
        responses={200: s.CategorySerializer(many=True), **problem_responses(400)},
        tags=["catalog: categories"],
    )
    def get(self, request: Request) -> Response:
        return list_response(request, selectors.category_list(actor=actor_of(request)), s.CategorySerializer)


class CategoryDetailApi(CatalogApi):
    @extend_schema(
        operation_id="getCategory",
        summary="One category",
        responses={200: s.CategorySerializer, **problem_responses(404)},
        tags=["catalog: categories"],
    )
    def get(self, request: Request, category_id: str) -> Response:
        category = selectors.category_get(actor=actor_of(request), category_id=category_id)
        if category is None:
            raise exceptions.NotFound(f"Category '{category_id}' not found.")
        return Response(s.CategorySerializer(category).data)


# --- blueprints ------------------------------------------------------------

class BlueprintListCreateApi(CatalogApi):
    @extend_schema(
        operation_id="createBlueprint",
        summary="Create a blueprint",
        description=(
            "The spec is validated (agent names, agent classes, messaging backend, execution engine) "
            "and stored exactly as sent. Invalid specs answer 400 with `errors` keyed by the field "
            "path, e.g. `spec.agents.0.name`."
        ),
        request=s.BlueprintWriteSerializer,
        responses={201: s.IdSerializer, **problem_responses(400, 403, 404, 415)},
        examples=[OpenApiExample("Seed 000", request_only=True, value=SEED_BLUEPRINT_REQUEST)],
        tags=["catalog: blueprints"],
    )
    def post(self, request: Request) -> Response:
        body = s.BlueprintWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        actor = actor_of(request)
        author = acting_user(actor, data.pop("author_id"), must_be_caller=False, field="author_id")
        organization = _organization_to_write(actor, author, data.pop("organization_id"), field="organization_id",
                                              doing="creating a blueprint")
        _category_fits(data.get("category"), organization)
        try:
            blueprint = services.blueprint_create(**data, author=author, organization=organization)
        except SpecError as exc:
            raise _spec_invalid(exc) from None
        return Response({"id": blueprint.id}, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="listBlueprints",
        summary="List blueprints (without their specs)",
        parameters=[
            OpenApiParameter("category_id", OpenApiTypes.STR, description="Only this category."),
            OpenApiParameter("organization_id", OpenApiTypes.STR, description="Only this organization's."),
            OpenApiParameter("org_id", OpenApiTypes.STR, description="Same as organization_id."),
            OpenApiParameter("author_id", OpenApiTypes.STR, description="Only this author's."),
            *LIST_PARAMETERS,
        ],
        responses={200: s.BlueprintInfoSerializer(many=True), **problem_responses(400)},
        tags=["catalog: blueprints"],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        blueprints = selectors.blueprint_list(
            actor=actor_of(request),
            category_id=query.get("category_id"),
            organization_id=query.get("organization_id") or query.get("org_id"),
            author_id=query.get("author_id"),
        )
        return list_response(request, blueprints, s.BlueprintInfoSerializer)


class BlueprintDetailApi(CatalogApi):
    @extend_schema(
        operation_id="getBlueprint",
        summary="One blueprint with its spec",
        responses={200: s.BlueprintDetailSerializer, **problem_responses(404)},
        tags=["catalog: blueprints"],
    )
    def get(self, request: Request, blueprint_id: str) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        return Response(s.BlueprintDetailSerializer(blueprint, context={"actor": actor}).data)

    def _update(self, request: Request, blueprint_id: str, *, partial: bool) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        permissions.blueprint_change_check(actor, blueprint)
        body = s.BlueprintWriteSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        # The author changes only in development (trusted); with authentication on it stays.
        named_author = changes.pop("author_id", None)
        if named_author and actor.development:
            changes["author"] = acting_user(actor, named_author, must_be_caller=False, field="author_id")
        named_organization = changes.pop("organization_id", None)
        if named_organization and named_organization != blueprint.organization_id:
            changes["organization"] = _organization_to_write(
                actor, changes.get("author") or blueprint.author or actor.user, named_organization,
                field="organization_id", doing="moving a blueprint")
        _category_fits(changes.get("category", blueprint.category), changes.get("organization", blueprint.organization))
        try:
            blueprint = services.blueprint_update(blueprint=blueprint, **changes)
        except SpecError as exc:
            raise _spec_invalid(exc) from None
        return Response(s.BlueprintDetailSerializer(blueprint, context={"actor": actor}).data)

    @extend_schema(
        operation_id="replaceBlueprint",
        summary="Replace a blueprint (fields left out return to their defaults)",
        request=s.BlueprintWriteSerializer,
        responses={200: s.BlueprintDetailSerializer, **problem_responses(400, 403, 404, 415)},
        tags=["catalog: blueprints"],
    )
    def put(self, request: Request, blueprint_id: str) -> Response:
        return self._update(request, blueprint_id, partial=False)

    @extend_schema(
        operation_id="updateBlueprint",
        summary="Change some fields of a blueprint",
        request=s.BlueprintWriteSerializer(partial=True),
        responses={200: s.BlueprintDetailSerializer, **problem_responses(400, 403, 404, 415)},
        tags=["catalog: blueprints"],
    )
    def patch(self, request: Request, blueprint_id: str) -> Response:
        return self._update(request, blueprint_id, partial=True)

    @extend_schema(
        operation_id="deleteBlueprint",
        summary="Delete a blueprint (guilds launched from it are not touched)",
        responses={204: None, **problem_responses(403, 404)},
        tags=["catalog: blueprints"],
    )
    def delete(self, request: Request, blueprint_id: str) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        permissions.blueprint_change_check(actor, blueprint, doing="deleting this blueprint")
        services.blueprint_delete(blueprint=blueprint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlueprintShareApi(CatalogApi):
    @extend_schema(
        operation_id="shareBlueprint",
        summary="Share a blueprint with an organisation (its author or an admin of its organisation)",
        description="Members of that organisation may then read and launch it while its exposure is `shared`.",
        request=s.ShareSerializer,
        responses={204: None, **problem_responses(400, 403, 404, 415)},
        tags=["catalog: blueprints"],
    )
    def post(self, request: Request, blueprint_id: str) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        permissions.blueprint_change_check(actor, blueprint, doing="sharing this blueprint")
        body = s.ShareSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = _organization_or_404(body.validated_data["organization_id"])
        services.blueprint_share(blueprint=blueprint, organization=organization)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlueprintUnshareApi(CatalogApi):
    @extend_schema(
        operation_id="unshareBlueprint",
        summary="Stop sharing a blueprint with an organisation",
        responses={204: None, **problem_responses(403, 404)},
        tags=["catalog: blueprints"],
    )
    def delete(self, request: Request, blueprint_id: str, organization_id: str) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        permissions.blueprint_change_check(actor, blueprint, doing="unsharing this blueprint")
        services.blueprint_unshare(blueprint=blueprint, organization_id=organization_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlueprintLaunchApi(CatalogApi):
    @extend_schema(
        parameters=[idempotency.PARAMETER], operation_id="launchGuildFromBlueprint",
        summary="Launch a guild from a blueprint",
        description=(
            "Stores the guild with the blueprint's spec (status REQUESTED) and launches it. "
            "Follow its status on `GET /api/guilds/{id}` or the system socket. With authentication on, "
            "`user_id` must be the caller's username (403 otherwise) and `org_id` an organisation where the "
            "caller is a member (404 when the caller is not in it, 403 for a viewer)."
        ),
        request=s.BlueprintLaunchSerializer,
        responses={201: s.IdSerializer, **problem_responses(400, 403, 404, 409, 415)},
        examples=[
            OpenApiExample(
                "Seed 000",
                request_only=True,
                value={
                    "guild_name": "EchoTestGuild",
                    "user_id": "testuser123",
                    "org_id": "testorg456",
                    "description": "My test guild",
                },
            )
        ],
        tags=["catalog: blueprints"],
    )
    def post(self, request: Request, blueprint_id: str) -> Response:
        actor = actor_of(request)
        blueprint = selectors.blueprint_get(actor=actor, blueprint_id=blueprint_id)
        body = s.BlueprintLaunchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        launcher = acting_user(actor, data["user_id"], must_be_caller=True, field="user_id")
        organization_id = acting_organization_id(actor, launcher, data["org_id"], field="org_id")
        permissions.blueprint_launch_check(actor, blueprint, organization_id)

        def launch() -> Response:
            try:
                guild = services.blueprint_launch(blueprint=blueprint, guild_name=data["guild_name"],
                                                  launched_by=launcher, organization=_organization_or_404(organization_id),
                                                  description=data.get("description"))
            except services.BlueprintNotLaunchable as exc:
                # The request is fine; the stored blueprint is not (an agent class went away since it was saved).
                raise Conflict(str(exc), code="blueprint_invalid") from None
            return Response({"id": guild.id}, status=status.HTTP_201_CREATED)

        return idempotent(request, scope=scope_of(actor, organization_id), work=launch)
