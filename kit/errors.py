"""Errors: domain errors carry their HTTP status; every error leaves as RFC 9457 problem+json.

Services raise :class:`DomainError` subclasses (no HTTP in service code); the handlers
installed by :func:`install_problem_handlers` turn them, validation errors, HTTP errors and
unexpected exceptions into ``application/problem+json``. Validation problems list each bad
field by its path (``errors[].field`` such as ``body.address.city``). Unexpected exceptions
are logged with their stack trace and answered with a bare 500: no trace reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
#: A problem's ``type`` is this + its code: a relative reference (RFC 9457 3.1.1), resolved
#: against the URL the client asked (the gateway's), which serves each type's page there
#: (``policy/problems.yaml``, :mod:`gateway.problems`).
PROBLEM_TYPE_BASE = "/problems/"

logger = logging.getLogger("kit.errors")


class DomainError(Exception):
    """A failure the caller can understand. Subclasses set ``status`` and ``code``."""

    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"
    # Commit the unit of work although the request fails: for changes that are the point
    # of the failure (a failed-login count, a token family revoked on reuse).
    keep_changes: bool = False
    headers: dict[str, str] = {}

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class NotFound(DomainError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service-unavailable", "Service unavailable"


def problem(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    code: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    """An ``application/problem+json`` response."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location)


def validation_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Each pydantic error as ``{field, message, type}``; the input value is never echoed,
    since it may be personal data."""
    return [
        {"field": field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in errors
    ]


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    response = problem(
        exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        instance=request.url.path,
        **exc.extra,
    )
    response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = validation_problems(exc.errors())
    if any(item["type"] == "json_invalid" for item in problems):
        # Not JSON at all: the request is malformed (400), not a well-formed request with
        # fields the server cannot take (422; RFC 9110 15.5.1 and 15.5.21).
        return problem(
            400,
            title="Malformed JSON",
            code="malformed-json",
            detail="the body is not valid JSON",
            instance=request.url.path,
            errors=[item for item in problems if item["type"] == "json_invalid"],
        )
    fields = ", ".join(item["field"] for item in problems)
    return problem(
        422,
        title="Invalid request",
        code="validation-error",
        detail=f"invalid or missing fields: {fields}",
        instance=request.url.path,
        errors=problems,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = problem(
        exc.status_code, detail=str(exc.detail) if exc.detail else None, instance=request.url.path
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        500,
        title="Internal error",
        code="internal-error",
        detail="The server could not complete the request.",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]


#: What every error body holds (RFC 9457), as the OpenAPI documents it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "each bad field by its path (validation problems)",
            "items": {
                "type": "object",
                "required": ["field", "message", "type"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _openapi_with_problems(app: FastAPI) -> Any:
    """The app's OpenAPI with its errors as they are answered: FastAPI documents a 422 as
    its own ``application/json`` shape, and errors declared as problem+json carry no
    schema; both become :data:`PROBLEM_SCHEMA` under ``application/problem+json``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec: dict[str, Any] = build()
        for path in spec.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        _document_problem(response)
        schemas = spec.get("components", {}).get("schemas", {})
        for name in _VALIDATION_SCHEMAS:
            schemas.pop(name, None)
        app.openapi_schema = spec
        return spec

    return openapi


def _document_problem(response: dict[str, Any]) -> None:
    content: dict[str, Any] = response.setdefault("content", {})
    default = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if default.rsplit("/", 1)[-1] in _VALIDATION_SCHEMAS:
        del content["application/json"]
        response["description"] = "Invalid request: each bad field named (RFC 9457)"
    if not content or PROBLEM_JSON in content:
        content[PROBLEM_JSON] = {"schema": PROBLEM_SCHEMA}
