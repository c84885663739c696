"""Unknown query parameters are refused, never silently ignored.

A misspelt parameter (``?limt=5``, ``?subjetc=...``) that a server ignores answers as if
the client had not asked for it: a full page instead of five items, every subject's rows
instead of one's. So each route of an app accepts only the query parameters it declares
(its own and its dependencies'); any other is answered 422 ``validation-error`` naming it
(``errors[].field`` ``query.<name>``), like any invalid field (:mod:`kit.errors`). The value
is never echoed, since it may be personal data.

:func:`refuse_unknown_query` is an app-wide dependency (:func:`kit.app.create_app`); the
names a route declares are worked out on its first request with a query and kept on the
route; a request with no query string costs nothing more than a check of it.
:func:`passes_any_query` marks an endpoint whose query string another app judges (the
gateway's proxy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.params import Query
from fastapi.routing import APIRoute

__all__ = ["declared_query_parameters", "passes_any_query", "refuse_unknown_query"]

_ANY_QUERY: Final = "__passes_any_query__"
#: Where a route keeps what it declares, worked out on its first request (on the route
#: itself: a table keyed by ``id(route)`` could hand a new route a dead one's entry).
_DECLARED: Final = "__declared_query__"
_UNKNOWN: Final = object()
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def passes_any_query(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint whose query string is another's to judge (the gateway's proxy
    forwards it to the service that declares the route's parameters)."""
    setattr(endpoint, _ANY_QUERY, True)
    return endpoint


def declared_query_parameters(route: APIRoute) -> frozenset[str] | None:
    """The names (aliases) of the query parameters ``route`` and its dependencies declare;
    None for an endpoint marked :func:`passes_any_query`."""
    if getattr(route.endpoint, _ANY_QUERY, False):
        return None
    return frozenset(
        field.alias
        for field in get_flat_params(route.dependant)
        if isinstance(field.field_info, Query)
    )


async def refuse_unknown_query(request: Request) -> None:
    """422 naming each query parameter the matched route does not declare."""
    query: bytes = request.scope.get("query_string", b"")
    route = request.scope.get("route")
    if not query or not isinstance(route, APIRoute):
        return
    declared = getattr(route, _DECLARED, _UNKNOWN)
    if declared is _UNKNOWN:
        declared = declared_query_parameters(route)
        setattr(route, _DECLARED, declared)
    if not isinstance(declared, frozenset):
        return
    given = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    unknown = sorted(given - declared)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "Unknown query parameter",
                }
                for name in unknown
            ]
        )
