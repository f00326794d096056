"""The OpenAPI schema generates cleanly and documents the catalog and guild routes with the error shape."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

DOCUMENTED = {
    "/catalog/agents": {"get", "post"},
    "/catalog/agents/{qualified_class_name}": {"get"},
    "/catalog/categories/": {"get", "post"},
    "/catalog/categories/{category_id}": {"get"},
    "/catalog/blueprints/": {"get", "post"},
    "/catalog/blueprints/{blueprint_id}": {"get", "put", "patch", "delete"},
    "/catalog/blueprints/{blueprint_id}/guilds": {"post"},
    "/catalog/blueprints/{blueprint_id}/share/": {"post"},
    "/catalog/blueprints/{blueprint_id}/share/{organization_id}": {"delete"},
    "/api/guilds": {"get"},
    "/api/guilds/{guild_id}": {"get"},
    "/api/guilds/{guild_id}/history": {"get"},
    "/api/auth/token": {"post"},
    "/api/auth/token/refresh": {"post"},
    "/api/auth/logout": {"post"},
    "/api/auth/me": {"get"},
    "/api/users": {"post"},
    "/api/organizations": {"get", "post"},
    "/api/organizations/{organization_id}": {"get"},
    "/api/organizations/{organization_id}/members": {"get", "post"},
    "/api/organizations/{organization_id}/members/{username}": {"patch", "delete"},
    "/api/organizations/{organization_id}/api-keys": {"get", "post"},
    "/api/organizations/{organization_id}/api-keys/{key_id}": {"delete"},
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("schema") / "schema.json"
    # --fail-on-warn turns any generator warning into an error; --validate checks it against the OpenAPI spec.
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", "--file", str(target))
    return json.loads(target.read_text())


def test_schema_lists_each_route_once_in_the_seed_spelling(schema):
    for path, methods in DOCUMENTED.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path
    # The other slash forms are served but not documented twice.
    assert "/catalog/agents/" not in schema["paths"]
    assert "/catalog/categories" not in schema["paths"]


def test_errors_are_documented_with_the_problem_shape(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert {"status", "code", "detail"} <= set(problem["required"])
    register = schema["paths"]["/catalog/agents"]["post"]["responses"]
    assert register["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
    assert "201" in register


def test_request_bodies_are_documented(schema):
    create = schema["paths"]["/catalog/blueprints/"]["post"]["requestBody"]["content"]
    assert list(create) == ["application/json"]
    launch = schema["paths"]["/catalog/blueprints/{blueprint_id}/guilds"]["post"]["requestBody"]["content"]
    ref = launch["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"guild_name", "user_id", "org_id"} <= set(schema["components"]["schemas"][ref]["required"])


def test_bearer_auth_is_declared_and_required_except_to_get_a_token(schema):
    bearer = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert {"bearerAuth": []} in schema["paths"]["/api/guilds"]["get"]["security"]
    for path in ("/api/auth/token", "/api/auth/token/refresh", "/api/auth/logout"):
        assert schema["paths"][path]["post"].get("security") in (None, [], [{}]), path


def test_token_request_and_answer_are_documented(schema):
    issue = schema["paths"]["/api/auth/token"]["post"]
    ref = issue["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["required"]) == {"username", "password"}
    answer = issue["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"access", "refresh", "expires_in"} <= set(schema["components"]["schemas"][answer]["properties"])
    assert {"401", "429"} <= set(issue["responses"])


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_schema_and_docs_are_public_with_authentication_on(client, settings):
    settings.AUTH_DISABLED = False
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/guilds").status_code == 401


def test_the_api_docs_link_to_the_sites_pages(schema):
    description = schema["info"]["description"]
    for page in ("/dashboard/", "/dashboard/runs/", "/dashboard/catalog/", "/chat/"):
        assert f"({page})" in description
