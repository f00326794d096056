"""The one error body of the HTTP API.

Every error answer is `{"status": <int>, "code": <str>, "detail": <str>, "errors": {<field>: [<str>]}}`
(`errors` only for input errors). `detail` keeps clients of the original system working.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from guildsite import identity, permissions

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is in a state that does not allow this."
    default_code = "conflict"


def problem(status_code: int, code: str, detail: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status_code, "code": code, "detail": detail}
    if errors:
        body["errors"] = errors
    return body


def _flatten(detail: Any) -> dict[str, Any]:
    """DRF nests errors as lists/dicts of ErrorDetail; make them plain JSON."""
    if isinstance(detail, dict):
        return {str(key): _plain(value) for key, value in detail.items()}
    return {"non_field_errors": _plain(detail)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)


def _from_domain(exc: Exception) -> Exception:
    """The permission layer's and the identity resolver's refusals as HTTP errors."""
    if isinstance(exc, Http404 | permissions.NotFound):
        return exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied | permissions.Forbidden | identity.NamedAnother):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, identity.InvalidInput):
        return exceptions.ValidationError({exc.field: [str(exc)]})
    return exc


def _invalid_input_summary(errors: dict[str, Any]) -> str:
    """Each field's first message: a request missing two fields hears of both, not one at a time."""
    parts = []
    for field, messages in errors.items():
        message = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], str) else messages
        parts.append(f"{field}: {message}" if field != "non_field_errors" else str(message))
    return f"Invalid input: {'; '.join(parts)}" if parts else "Invalid input."


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _from_domain(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        response.data = problem(response.status_code, "invalid", _invalid_input_summary(errors), errors)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = problem(response.status_code, code if isinstance(code, str) else "error", str(detail))
    return response


def json_error_view(status_code: int, code: str, detail: str):
    def view(request, exception=None):
        return JsonResponse(problem(status_code, code, detail), status=status_code)

    return view
