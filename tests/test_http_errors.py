"""Errors outside any view still answer in the one error shape."""

from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/catalog/nope", "/api/nope/deeper", "/api/guilds/x/y/z"])
def test_an_unknown_api_route_is_a_json_404(client, problem, debug, path):
    with override_settings(DEBUG=debug):
        problem(client.get(path), 404, "not_found")
        problem(client.post(path, "{}", content_type="application/json"), 404, "not_found")


def test_an_unknown_route_elsewhere_is_a_json_404_when_debug_is_off(client, problem):
    with override_settings(DEBUG=False):
        problem(client.get("/no/such/page"), 404, "not_found")
