"""POST/GET /catalog/categories/ and GET /catalog/categories/{id} (seed 000, 1.2)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_seed_request_answers_201_with_an_id(api, seed_category_body):
    response = api.post("/catalog/categories/", seed_category_body)

    assert response.status_code == 201
    assert set(response.json()) == {"id"}


def test_the_same_request_again_answers_the_same_id(api, seed_category_body):
    first = api.post("/catalog/categories/", seed_category_body).json()["id"]

    again = api.post("/catalog/categories/", seed_category_body)

    assert again.status_code == 200
    assert again.json() == {"id": first}
    assert len(api.get("/catalog/categories/").json()) == 1


def test_a_taken_name_with_another_description_is_a_409(api, problem, seed_category_body):
    api.post("/catalog/categories/", seed_category_body)

    body = problem(api.post("/catalog/categories/", {"name": "testing", "description": "other"}), 409, "conflict")

    assert "Testing" in body["detail"]


@pytest.mark.parametrize(("payload", "field"), [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 129}, "name")])
def test_invalid_input_is_a_field_error(api, problem, payload, field):
    assert field in problem(api.post("/catalog/categories/", payload), 400, "invalid")["errors"]


def test_list_and_detail(api, seed_category_body):
    category_id = api.post("/catalog/categories/", seed_category_body).json()["id"]
    api.post("/catalog/categories/", {"name": "Assistants"})

    listed = api.get("/catalog/categories/").json()
    detail = api.get(f"/catalog/categories/{category_id}")

    assert [c["name"] for c in listed] == ["Assistants", "Testing"]
    assert detail.status_code == 200
    assert detail.json() == {"id": category_id, **seed_category_body, "organization_id": None}


def test_without_trailing_slash_too(api, seed_category_body):
    assert api.post("/catalog/categories", seed_category_body).status_code == 201
    assert api.get("/catalog/categories").status_code == 200


def test_unknown_id_is_a_404(api, problem):
    assert "nope" in problem(api.get("/catalog/categories/nope"), 404, "not_found")["detail"]


def test_list_is_one_query(api, seed_category_body, django_assert_num_queries):
    api.post("/catalog/categories/", seed_category_body)
    api.post("/catalog/categories/", {"name": "Assistants"})

    with django_assert_num_queries(1):
        assert len(api.get("/catalog/categories/").json()) == 2


def test_list_limit_and_next_link(api, problem):
    for name in ("a", "b", "c"):
        api.post("/catalog/categories/", {"name": name})

    first = api.get("/catalog/categories/?limit=2")
    rest = api.get("/catalog/categories/?limit=2&offset=2")

    assert [c["name"] for c in first.json()] == ["a", "b"]
    assert 'rel="next"' in first["Link"]
    assert "offset=2" in first["Link"]
    assert [c["name"] for c in rest.json()] == ["c"]
    assert "Link" not in rest
    assert "limit" in problem(api.get("/catalog/categories/?limit=0"), 400)["errors"]
    assert "limit" in problem(api.get("/catalog/categories/?limit=1001"), 400)["errors"]
    assert "offset" in problem(api.get("/catalog/categories/?offset=x"), 400)["errors"]
