"""RFC 9110 methods on the gateway's own routes (``/healthz``, ``/readyz``, ``/metrics``,
the documentation pages). The proxied routes get theirs from the route table in
:mod:`gateway.handler`; here FastAPI routes a GET route for GET only, and the gateway's
catch-all would answer any other method 404. So:

- :func:`as_get` serves a HEAD as the GET it stands for, before FastAPI routes it: its
  status and headers (``Content-Length`` included) without content (section 9.3.2);
- when the catch-all finds no entry of the route table, :func:`own_allow` finds the
  methods the gateway's own routes take on the path (HEAD wherever GET, OPTIONS always):
  OPTIONS answers 204 with them, any other method they do not take (TRACE included) 405
  with the true ``Allow``, problem+json (:func:`not_allowed`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import fastapi.routing
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routes import ALLOW_ORDER
from kit.errors import problem

__all__ = ["CATCH_ALL", "as_get", "not_allowed", "own_allow"]

#: The path of the gateway's catch-all route (:mod:`gateway.handler`), not an own route.
CATCH_ALL = "/{full_path:path}"


async def as_get(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on a HEAD request as a GET, sending no content."""

    async def without_content(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    await app({**scope, "method": "GET"}, receive, without_content)


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Each route as declared: FastAPI 0.16x includes routers lazily (its routes list
    holds the included routers) and flattens them with ``iter_route_contexts``; earlier
    versions copy the routes in. The gateway includes its routers without a prefix."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        yield from routes
        return
    for context in contexts(routes):
        yield context.original_route


def own_allow(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str, ...]:
    """The methods the gateway's own routes take on the request's path; empty if none of
    them has it."""
    methods: set[str] = set()
    for route in _flat(routes):
        if isinstance(route, Route) and route.path != CATCH_ALL and route.methods:
            match, _ = route.matches({**scope, "method": "GET"})
            if match is not Match.NONE:
                methods |= route.methods
    if not methods:
        return ()
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return tuple(method for method in ALLOW_ORDER if method in methods)


def not_allowed(method: str, path: str, allowed: Sequence[str]) -> Response:
    """OPTIONS: 204 with ``Allow``; any other method: 405 problem+json with ``Allow``."""
    allow = ", ".join(allowed)
    if method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    response = problem(
        405,
        detail=f"{method} is not allowed here; allowed: {allow}",
        code="method-not-allowed",
        instance=path,
        allow=list(allowed),
    )
    response.headers["Allow"] = allow
    return response
