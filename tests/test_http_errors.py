"""Errors outside any view still answer in the one error shape."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/catalog/nope", "/api/nope/deeper", "/api/guilds/x/y/z"])
def test_an_unknown_api_route_is_a_json_404(problem, debug, path):
    # CSRF checks on, as for curl: a POST to a wrong API path must still be a 404, not a CSRF page.
    client = Client(enforce_csrf_checks=True)
    with override_settings(DEBUG=debug):
        problem(client.get(path), 404, "not_found")
        problem(client.post(path, "{}", content_type="application/json"), 404, "not_found")


def test_an_unknown_route_elsewhere_is_a_json_404_when_debug_is_off(client, problem):
    with override_settings(DEBUG=False):
        problem(client.get("/no/such/page"), 404, "not_found")
