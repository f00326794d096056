"""Identity endpoints: tokens, the caller, users, organisations, members and API keys.

Each view parses, authorises through guildsite.permissions and calls one service or selector.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guildsite import permissions
from guildsite.accounts import selectors, services
from guildsite.accounts.api import serializers as s
from guildsite.accounts.tokens import CredentialError
from guildsite.api_common import LIST_PARAMETERS, list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.identity import Actor, actor_of
from guildsite.throttle import sign_in_attempt


class AccountsApi(APIView):
    parser_classes = [JSONParser]


class PublicApi(AccountsApi):
    """Endpoints that take a credential in the body instead of a header."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # Without it DRF answers a refused credential with 403: it is a 401, with its challenge.
        return 'Bearer realm="guildsite"'


def _signed_in(actor: Actor) -> Actor:
    if actor.user is None:
        raise exceptions.NotAuthenticated("sign in, send 'Authorization: Bearer <token>' "
                                          "(or, in development, an X-User-Id header)")
    return actor


def _account_error(exc: services.AccountError) -> Exception:
    if isinstance(exc, services.AlreadyExists | services.LastAdmin):
        return Conflict(str(exc))
    if isinstance(exc, services.ScopeAboveRole):
        return exceptions.PermissionDenied(str(exc))
    if isinstance(exc, services.UnknownUser):
        return exceptions.ValidationError({"username": [str(exc)]})
    if isinstance(exc, services.InvalidPassword):
        return exceptions.ValidationError({"password": exc.messages})
    return exceptions.ValidationError({"non_field_errors": [str(exc)]})


# --- tokens ----------------------------------------------------------------------------


class TokenApi(PublicApi):
    @extend_schema(
        operation_id="issueToken", summary="Sign in: an access token and a refresh token for a username and password",
        description=f"Throttled to {settings.GUILDSITE_TOKEN_RATE_PER_MINUTE} attempts a minute per username and "
                    "per client address (429 with Retry-After).",
        request=s.TokenRequestSerializer, auth=[],
        responses={200: s.TokenPairSerializer, **problem_responses(400, 401, 415, 429)}, tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        body = s.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        username, password = body.validated_data["username"], body.validated_data["password"]
        wait = sign_in_attempt(username, request.META.get("REMOTE_ADDR", ""))
        if wait is not None:
            raise exceptions.Throttled(wait=wait, detail=f"too many sign-in attempts: try again in {wait} s")
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            raise exceptions.NotAuthenticated("invalid username or password")
        return Response(services.token_pair_issue(user=user))


class TokenRefreshApi(PublicApi):
    @extend_schema(operation_id="refreshToken", summary="A new access token for a refresh token",
                   request=s.RefreshRequestSerializer, auth=[],
                   responses={200: s.AccessTokenSerializer, **problem_responses(400, 401, 415)}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = s.RefreshRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            return Response(services.access_token_refresh(refresh=body.validated_data["refresh"]))
        except CredentialError as exc:
            raise exceptions.NotAuthenticated(str(exc)) from None


class LogoutApi(PublicApi):
    @extend_schema(operation_id="logout", summary="Revoke a refresh token (access tokens run out on their own)",
                   request=s.RefreshRequestSerializer, auth=[],
                   responses={204: None, **problem_responses(400, 401, 415)}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = s.RefreshRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.refresh_token_revoke(refresh=body.validated_data["refresh"])
        except CredentialError as exc:
            raise exceptions.NotAuthenticated(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(AccountsApi):
    @extend_schema(operation_id="me", summary="Who you are, and your organisations with your role in each",
                   responses={200: s.MeSerializer, **problem_responses(401)}, tags=["auth"])
    def get(self, request: Request) -> Response:
        actor = _signed_in(actor_of(request))
        # Oldest membership first: an organisation that added you later does not become your default.
        organizations = (selectors.organization_list(actor=actor).filter(pk__in=list(permissions.roles(actor)))
                         .filter(memberships__user=actor.user).order_by("memberships__created_at"))
        user = actor.user
        return Response({
            "id": user.pk, "username": user.get_username(), "email": user.email, "is_staff": actor.is_staff,
            "organizations": [{"id": o.pk, "name": o.name, "role": permissions.roles(actor)[o.pk]} for o in organizations],
        })


class UsersApi(AccountsApi):
    @extend_schema(operation_id="createUser", summary="Create a user who signs in with a password (site staff)",
                   request=s.UserCreateSerializer,
                   responses={201: s.UserSerializer, **problem_responses(400, 401, 403, 409, 415)}, tags=["auth"])
    def post(self, request: Request) -> Response:
        permissions.require_staff(_signed_in(actor_of(request)), doing="creating a user")
        body = s.UserCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            user = services.user_create(**body.validated_data)
        except services.AccountError as exc:
            raise _account_error(exc) from None
        return Response(s.UserSerializer(user).data, status=status.HTTP_201_CREATED)


# --- organisations ---------------------------------------------------------------------


class OrganizationsApi(AccountsApi):
    @extend_schema(operation_id="listOrganizations", summary="Your organisations", parameters=LIST_PARAMETERS,
                   responses={200: s.OrganizationSerializer(many=True), **problem_responses(400, 401)},
                   tags=["organisations"])
    def get(self, request: Request) -> Response:
        actor = actor_of(request)
        response = list_response(request, selectors.organization_list(actor=actor), s.OrganizationSerializer)
        roles = permissions.roles(actor)
        for item in response.data:
            item["role"] = roles.get(item["id"], item["role"])
        return response

    @extend_schema(operation_id="createOrganization",
                   summary="Create an organisation; you become its admin",
                   description="A given `id` that is taken is a 409; without one, the id is derived from the name.",
                   request=s.OrganizationCreateSerializer,
                   responses={201: s.OrganizationSerializer, **problem_responses(400, 401, 403, 409, 415)},
                   tags=["organisations"])
    def post(self, request: Request) -> Response:
        actor = _signed_in(actor_of(request))
        if actor.api_key is not None:
            raise exceptions.PermissionDenied("API keys do not create organisations: sign in as a user")
        body = s.OrganizationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            organization = services.organization_create(creator=actor.user, **body.validated_data)
        except services.AccountError as exc:
            raise _account_error(exc) from None
        data = s.OrganizationSerializer(organization, context={"roles": {organization.pk: "admin"}}).data
        return Response(data, status=status.HTTP_201_CREATED)


class OrganizationApi(AccountsApi):
    @extend_schema(operation_id="getOrganization", summary="One of your organisations",
                   responses={200: s.OrganizationSerializer, **problem_responses(401, 404)}, tags=["organisations"])
    def get(self, request: Request, organization_id: str) -> Response:
        organization, role = selectors.organization_get(actor=actor_of(request), organization_id=organization_id)
        return Response(s.OrganizationSerializer(organization, context={"roles": {organization.pk: role}}).data)


class MembersApi(AccountsApi):
    @extend_schema(operation_id="listMembers", summary="Who is in the organisation, with which role",
                   parameters=LIST_PARAMETERS,
                   responses={200: s.MembershipSerializer(many=True), **problem_responses(400, 401, 404)},
                   tags=["organisations"])
    def get(self, request: Request, organization_id: str) -> Response:
        organization, _ = selectors.organization_get(actor=actor_of(request), organization_id=organization_id)
        return list_response(request, selectors.membership_list(organization=organization), s.MembershipSerializer)

    @extend_schema(operation_id="addMember", summary="Add a user to the organisation (its admins)",
                   request=s.MembershipCreateSerializer,
                   responses={201: s.MembershipSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
                   tags=["organisations"])
    def post(self, request: Request, organization_id: str) -> Response:
        actor = actor_of(request)
        permissions.organization_admin_check(actor, organization_id, doing="adding a member")
        organization, _ = selectors.organization_get(actor=actor, organization_id=organization_id)
        body = s.MembershipCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            membership = services.membership_add(organization=organization, **body.validated_data)
        except services.AccountError as exc:
            raise _account_error(exc) from None
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberApi(AccountsApi):
    def _membership(self, request: Request, organization_id: str, username: str, doing: str):
        actor = actor_of(request)
        permissions.organization_admin_check(actor, organization_id, doing=doing)
        organization, _ = selectors.organization_get(actor=actor, organization_id=organization_id)
        return selectors.membership_get(organization=organization, username=username)

    @extend_schema(operation_id="changeMember", summary="Change a member's role (its admins)",
                   request=s.MembershipChangeSerializer,
                   responses={200: s.MembershipSerializer, **problem_responses(400, 401, 403, 404, 409, 415)},
                   tags=["organisations"])
    def patch(self, request: Request, organization_id: str, username: str) -> Response:
        membership = self._membership(request, organization_id, username, "changing a role")
        body = s.MembershipChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            membership = services.membership_change(membership=membership, role=body.validated_data["role"])
        except services.AccountError as exc:
            raise _account_error(exc) from None
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(operation_id="removeMember", summary="Remove a member (its admins); the last admin stays",
                   responses={204: None, **problem_responses(401, 403, 404, 409)}, tags=["organisations"])
    def delete(self, request: Request, organization_id: str, username: str) -> Response:
        membership = self._membership(request, organization_id, username, "removing a member")
        try:
            services.membership_remove(membership=membership)
        except services.AccountError as exc:
            raise _account_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- API keys --------------------------------------------------------------------------


def _key_manager(request: Request, organization_id: str, doing: str):
    actor = _signed_in(actor_of(request))
    organization, role = selectors.organization_get(actor=actor, organization_id=organization_id)
    if actor.api_key is not None:
        raise exceptions.PermissionDenied(f"{doing} needs a signed-in user: API keys never manage keys")
    return actor, organization, role


class ApiKeysApi(AccountsApi):
    @extend_schema(operation_id="listApiKeys",
                   summary="The organisation's API keys (all of them for admins, your own otherwise); never the keys",
                   parameters=LIST_PARAMETERS,
                   responses={200: s.ApiKeySerializer(many=True), **problem_responses(400, 401, 403, 404)},
                   tags=["organisations"])
    def get(self, request: Request, organization_id: str) -> Response:
        actor, organization, role = _key_manager(request, organization_id, "listing API keys")
        return list_response(request, selectors.api_key_list(actor=actor, organization=organization, role=role),
                             s.ApiKeySerializer)

    @extend_schema(operation_id="createApiKey",
                   summary="Create an API key that acts as you in this organisation, at most at its scope",
                   description="`read` acts as a viewer, `write` as a member (a scope above your role is a 403). "
                               "The key is in the answer's `key`, this once: only its SHA-256 is stored.",
                   request=s.ApiKeyCreateSerializer,
                   responses={201: s.ApiKeyCreatedSerializer, **problem_responses(400, 401, 403, 404, 415)},
                   tags=["organisations"])
    def post(self, request: Request, organization_id: str) -> Response:
        actor, organization, _ = _key_manager(request, organization_id, "creating an API key")
        body = s.ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            key, raw = services.api_key_create(organization=organization, created_by=actor.user, **body.validated_data)
        except services.AccountError as exc:
            raise _account_error(exc) from None
        data = dict(s.ApiKeySerializer(key).data, key=raw)
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyApi(AccountsApi):
    @extend_schema(operation_id="revokeApiKey", summary="Revoke an API key (its creator or the organisation's admins)",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["organisations"])
    def delete(self, request: Request, organization_id: str, key_id: str) -> Response:
        actor, organization, role = _key_manager(request, organization_id, "revoking an API key")
        key = selectors.api_key_list(actor=actor, organization=organization, role=role).filter(pk=key_id).first()
        if key is None:
            raise exceptions.NotFound(f"organisation {organization_id} has no API key '{key_id}' of yours")
        services.api_key_revoke(key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)
