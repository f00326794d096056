"""/catalog/blueprints/: create (seed 000, 1.3), list with filters, detail, update, delete."""

from __future__ import annotations

import copy
import json

import pytest

pytestmark = pytest.mark.django_db

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"


def small_spec(**agent_fields) -> dict:
    return {"name": "S", "description": "", "agents": [{"name": "EchoAgent", "class_name": ECHO, **agent_fields}]}


def test_seed_request_with_redis_messaging_and_sync_engine_is_accepted(api, blueprint_body):
    response = api.post("/catalog/blueprints/", blueprint_body)

    assert response.status_code == 201, response.content
    assert set(response.json()) == {"id"}


def test_detail_returns_the_spec_exactly_as_posted(api, blueprint_body, blueprint_id, category_id):
    response = api.get(f"/catalog/blueprints/{blueprint_id}")

    assert response.status_code == 200
    blueprint = response.json()
    assert blueprint["spec"] == blueprint_body["spec"]
    assert "id" not in blueprint["spec"]["agents"][0]  # no generated agent ids are injected
    for field in ("name", "description", "version", "author_id", "organization_id", "exposure"):
        assert blueprint[field] == blueprint_body[field]
    assert blueprint["id"] == blueprint_id
    assert blueprint["category_id"] == category_id
    assert blueprint["category_name"] == "Testing"


def test_unknown_category_is_a_field_error(api, problem, blueprint_body):
    blueprint_body["category_id"] = "{category_id}"

    body = problem(api.post("/catalog/blueprints/", blueprint_body), 400, "invalid")

    assert "category_id" in body["errors"]


def test_category_is_optional(api, blueprint_body):
    del blueprint_body["category_id"]

    response = api.post("/catalog/blueprints/", blueprint_body)

    assert response.status_code == 201
    assert api.get(f"/catalog/blueprints/{response.json()['id']}").json()["category_id"] is None


@pytest.mark.parametrize(
    ("spec", "error_key"),
    [
        pytest.param({"name": "S", "agents": [{"class_name": ECHO}]}, "spec.agents.0.name", id="agent without name"),
        pytest.param({"name": "S", "agents": {"EchoAgent": ECHO}}, "spec.agents", id="agents not a list"),
        pytest.param(small_spec(additional_topics="echo_topic"), "spec.agents.0.additional_topics", id="topics str"),
        pytest.param(small_spec(listen_to_default_topic="maybe"), "spec.agents.0.listen_to_default_topic",
                     id="not a boolean"),
        pytest.param({"agents": []}, "spec.name", id="spec without name"),
        pytest.param({"name": 5, "agents": []}, "spec.name", id="name not a string"),
        pytest.param({"name": "S", "properties": {"execution_engine": "no.such.Engine"}},
                     "spec.properties.execution_engine", id="unknown engine"),
        pytest.param({"name": "S", "properties": {"messaging": {"backend_module": "x", "backend_class": "Y"}}},
                     "spec.properties.messaging", id="unknown messaging backend"),
        pytest.param(["not", "an", "object"], "spec", id="spec not an object"),
    ],
)
def test_a_broken_spec_is_a_400_with_field_errors(api, problem, blueprint_body, spec, error_key):
    blueprint_body["spec"] = spec

    body = problem(api.post("/catalog/blueprints/", blueprint_body), 400, "invalid")

    assert error_key in body["errors"], body["errors"]
    assert all(isinstance(m, str) for messages in body["errors"].values() for m in messages)


def test_an_unknown_agent_class_is_a_400_saying_why(api, problem, blueprint_body):
    blueprint_body["spec"] = small_spec(class_name="os.system")

    body = problem(api.post("/catalog/blueprints/", blueprint_body), 400, "invalid")

    messages = [m for key, ms in body["errors"].items() if key.startswith("spec.agents.0") for m in ms]
    assert any("os.system" in m for m in messages)


@pytest.mark.parametrize("missing", ["name", "author_id", "spec"])
def test_required_fields(api, problem, blueprint_body, missing):
    del blueprint_body[missing]

    assert missing in problem(api.post("/catalog/blueprints/", blueprint_body), 400, "invalid")["errors"]


def test_unknown_exposure_is_a_field_error(api, problem, blueprint_body):
    blueprint_body["exposure"] = "everyone"

    assert "exposure" in problem(api.post("/catalog/blueprints/", blueprint_body), 400)["errors"]


def test_malformed_json_is_a_400_in_the_error_shape(api, problem):
    response = api.generic("POST", "/catalog/blueprints/", '{"name": "x",', content_type="application/json")

    assert "JSON" in problem(response, 400, "parse_error")["detail"]


def test_another_content_type_is_a_415_in_the_error_shape(api, problem, blueprint_body):
    response = api.generic("POST", "/catalog/blueprints/", "name=x", content_type="application/x-www-form-urlencoded")

    problem(response, 415, "unsupported_media_type")


def test_list_filters(api, blueprint_body, category_id):
    mine = api.post("/catalog/blueprints/", blueprint_body).json()["id"]
    other = copy.deepcopy(blueprint_body)
    other.update(author_id="someone", organization_id="org2", category_id=None)
    theirs = api.post("/catalog/blueprints/", other).json()["id"]

    def ids(query: str) -> set[str]:
        response = api.get(f"/catalog/blueprints/{query}")
        assert response.status_code == 200
        return {b["id"] for b in response.json()}

    assert ids("") == {mine, theirs}
    assert ids(f"?category_id={category_id}") == {mine}
    assert ids("?organization_id=testorg456") == {mine}
    assert ids("?org_id=org2") == {theirs}
    assert ids("?author_id=someone") == {theirs}
    assert ids("?author_id=someone&org_id=testorg456") == set()


def test_list_items_leave_the_spec_out_and_take_one_query(api, blueprint_body, django_assert_num_queries):
    for _ in range(3):
        api.post("/catalog/blueprints/", blueprint_body)

    with django_assert_num_queries(1):
        listed = api.get("/catalog/blueprints/").json()

    assert len(listed) == 3
    assert all("spec" not in b and b["category_name"] == "Testing" for b in listed)


def test_put_replaces_and_patch_changes_some_fields(api, blueprint_id, blueprint_body):
    replaced = copy.deepcopy(blueprint_body)
    replaced.update(name="Renamed", version="v2", spec=small_spec())
    put = api.put(f"/catalog/blueprints/{blueprint_id}", replaced)

    patched = api.patch(f"/catalog/blueprints/{blueprint_id}", {"description": "changed"})
    stored = api.get(f"/catalog/blueprints/{blueprint_id}").json()

    assert put.status_code == 200
    assert put.json()["version"] == "v2"
    assert patched.status_code == 200
    assert stored["name"] == "Renamed"
    assert stored["description"] == "changed"
    assert stored["spec"] == small_spec()


def test_an_update_with_a_broken_spec_is_refused_and_changes_nothing(api, problem, blueprint_id, blueprint_body):
    response = api.patch(f"/catalog/blueprints/{blueprint_id}", {"spec": {"name": "S", "agents": [{}]}, "name": "X"})

    assert "spec.agents.0.name" in problem(response, 400, "invalid")["errors"]
    stored = api.get(f"/catalog/blueprints/{blueprint_id}").json()
    assert stored["name"] == "EchoTestBlueprint"
    assert stored["spec"] == blueprint_body["spec"]


def test_put_needs_the_required_fields(api, problem, blueprint_id):
    assert "spec" in problem(api.put(f"/catalog/blueprints/{blueprint_id}", {"name": "x", "author_id": "a"}), 400)[
        "errors"
    ]


def test_delete(api, problem, blueprint_id):
    assert api.delete(f"/catalog/blueprints/{blueprint_id}").status_code == 204
    problem(api.get(f"/catalog/blueprints/{blueprint_id}"), 404, "not_found")
    problem(api.delete(f"/catalog/blueprints/{blueprint_id}"), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_unknown_blueprint_is_a_404(api, problem, method):
    response = getattr(api, method)("/catalog/blueprints/nope", {"name": "x"})

    assert "nope" in problem(response, 404, "not_found")["detail"]


def test_method_not_allowed_is_in_the_error_shape(api, problem):
    problem(api.delete("/catalog/blueprints/"), 405, "method_not_allowed")


def test_unicode_survives_the_round_trip(api, blueprint_body):
    blueprint_body["spec"]["description"] = "Écho — テスト"
    blueprint_id = api.post("/catalog/blueprints/", blueprint_body).json()["id"]

    raw = api.get(f"/catalog/blueprints/{blueprint_id}").content

    assert json.loads(raw)["spec"]["description"] == "Écho — テスト"
