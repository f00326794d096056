"""Pieces shared by the catalog and guild HTTP APIs: routes, list windows and the documented error body.

Lists are plain JSON arrays. They are cut to `?limit=` items (default 100, at most 1000) from
`?offset=`; when more rows exist the answer carries a `Link: <...>; rel="next"` header, so a
client pages without a count query on every request.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def api_path(pattern: str, view: type[APIView], name: str) -> list[URLPattern]:
    """Serve `pattern` and its other trailing-slash form.

    The seed writes some routes with a slash and some without; clients send both. The spelling
    given here is the documented one; the other is served but left out of the schema.
    """
    other = pattern[:-1] if pattern.endswith("/") else f"{pattern}/"
    return [path(pattern, view.as_view(), name=name), path(other, view.as_view(schema=None))]


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class ProblemSerializer(serializers.Serializer):
    """The one error body (see guildsite.errors)."""

    status = serializers.IntegerField(help_text="The HTTP status code, repeated.")
    code = serializers.CharField(help_text="Machine-readable: invalid, not_found, conflict, parse_error, ...")
    detail = serializers.CharField(help_text="A sentence for a human.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Input errors only: {"field.path": ["message", ...]}.',
    )


def problem_responses(*codes: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input: `errors` maps each field path to its messages.",
        404: "No such resource.",
        409: "Conflicts with what is stored.",
        415: "The body is not `application/json`.",
    }
    return {code: OpenApiResponse(ProblemSerializer, description=descriptions.get(code, "Error.")) for code in codes}


LIST_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most this many items (default {DEFAULT_LIMIT}, "
                     f"maximum {MAX_LIMIT})."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Skip this many items (default 0)."),
]


def _non_negative_int(request: Request, name: str, default: int, *, minimum: int, maximum: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise serializers.ValidationError({name: [f"'{raw}' is not an integer."]}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise serializers.ValidationError({name: [f"must be {bound}."]})
    return value


def list_window(request: Request, queryset: QuerySet) -> tuple[list[Any], str | None]:
    """One window of `queryset` (?limit=, ?offset=) and the next window's URL, None on the last."""
    limit = _non_negative_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _non_negative_int(request, "offset", 0, minimum=0, maximum=None)
    # One row past the window tells whether a next page exists, in the same query.
    rows = list(queryset[offset : offset + limit + 1])
    if len(rows) <= limit:
        return rows, None
    query = request.query_params.copy()
    query["limit"] = str(limit)
    query["offset"] = str(offset + limit)
    return rows[:limit], request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def with_next_link(response: Response, next_url: str | None) -> Response:
    if next_url is not None:
        response["Link"] = f'<{next_url}>; rel="next"'
    return response


def list_response(request: Request, queryset: QuerySet, serializer_class: type[serializers.Serializer]) -> Response:
    """Serialize one window of `queryset`, with a `Link` header when there is more."""
    rows, next_url = list_window(request, queryset)
    data: Any = serializer_class(rows, many=True).data
    return with_next_link(Response(data), next_url)
