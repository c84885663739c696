"""What every app's OpenAPI says about access, beside its own answers (issue 24 item 10).

- ``components.securitySchemes`` names the bearer access token (RFC 6750, an RFC 9068 JWT
  of identity; :data:`kit.auth.BEARER_SCHEME`, listed by FastAPI under ``security`` of each
  operation that needs one); each such operation documents the 401 (no or a bad token,
  with its ``WWW-Authenticate`` challenge) and the 403 (a missing scope) it answers.
- The gateway in front answers every route 429 when a caller exceeds its rate, and 413 when
  a request body is over its limit; the documents say so, since clients only ever reach
  an app through the gateway.
- A query parameter is never null on the wire: an optional one is absent, so its schema is
  the value's (FastAPI's ``anyOf [X, null]`` for ``X | None`` becomes ``X``); a query
  parameter the operation does not list is refused 422 (:mod:`kit.query_params`).
- A JSON request body that is not JSON at all is answered 400 ``malformed-json``
  (:mod:`kit.errors`), never 422.

Error bodies are problem+json (:data:`kit.errors.PROBLEM_SCHEMA`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI

from kit.auth import BEARER_SCHEME
from kit.errors import PROBLEM_JSON, PROBLEM_SCHEMA

_CHALLENGE: Final = {
    "WWW-Authenticate": {
        "description": "RFC 6750 challenge: `invalid_token` (401) or `insufficient_scope` "
        "naming the scopes wanted (403)",
        "schema": {"type": "string"},
    }
}
UNAUTHENTICATED: Final = "No access token, or one not valid"
FORBIDDEN: Final = "The token lacks a scope this route needs, or the caller may not do this"
RATE_LIMITED: Final = "Too many requests from this caller (at the gateway)"
BODY_TOO_LARGE: Final = "The request body is over the gateway's limit"
MALFORMED_JSON: Final = "The body is not valid JSON (`malformed-json`)"
_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
}


def _problem(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        **extra,
    }


def _add(responses: dict[str, Any], status: str, response: dict[str, Any]) -> None:
    if status not in responses:
        responses[status] = response


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    choices = schema.get("anyOf")
    if not isinstance(choices, list):
        return schema
    values = [choice for choice in choices if choice != {"type": "null"}]
    if len(values) != 1 or len(values) == len(choices):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**values[0], **rest}


def install_access_documentation(app: FastAPI) -> None:
    """Wrap ``app.openapi`` (after :func:`kit.errors.install_problem_handlers`)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        documented = app.openapi_schema is not None
        spec = build()
        if documented:
            return spec
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "query" and "schema" in parameter:
                        parameter["schema"] = _without_null(parameter["schema"])
                responses: dict[str, Any] = operation.setdefault("responses", {})
                if {BEARER_SCHEME: []} in operation.get("security", []):
                    _add(responses, "401", _problem(UNAUTHENTICATED, headers=_CHALLENGE))
                    _add(responses, "403", _problem(FORBIDDEN, headers=_CHALLENGE))
                _add(responses, "429", _problem(RATE_LIMITED, headers=_RETRY_AFTER))
                if "requestBody" in operation:
                    _add(responses, "413", _problem(BODY_TOO_LARGE))
                    if "application/json" in operation["requestBody"].get("content", {}):
                        _add(responses, "400", _problem(MALFORMED_JSON))
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
