"""The gateway's plain ASGI entry: the hot path outside FastAPI's routing.

:class:`GatewayApp` is the gateway's FastAPI app with one change at the door: a request to
any path that is not one of the gateway's own routes (``/healthz``, ``/readyz``,
``/metrics``, the OpenAPI pages and whatever fixed path is added to the app later) goes
straight to :func:`gateway.handler.gateway_entry`, through the same middleware the app was
given (proxy headers, request id and request metrics), without FastAPI's routing,
dependency injection and exception middleware. The handler, its step list and its
problem+json answers are the ones FastAPI served before; an error the handler does not
expect is answered by the app's own handler for ``Exception`` (500 problem+json), as
FastAPI would have. Lifespan, the gateway's own routes and a wrong method on them stay
FastAPI's (its catch-all route still sends those to the handler).
"""

from __future__ import annotations

import inspect
from functools import cached_property

from fastapi import FastAPI, Request
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.handler import gateway_entry

__all__ = ["GatewayApp"]


class GatewayApp(FastAPI):
    """FastAPI for the gateway's own routes; every other request takes the hot path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._own_paths:
            scope["app"] = self
            await self._hot_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @cached_property
    def _own_paths(self) -> frozenset[str]:
        # Read at the first request, when every route has been added; the handler's
        # catch-all (a path parameter) is not one of them.
        return frozenset(
            route.path
            for route in self.routes
            if isinstance(route, StarletteRoute) and "{" not in route.path
        )

    @cached_property
    def _hot_path(self) -> ASGIApp:
        app: ASGIApp = self._serve
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await gateway_entry(request)
        except Exception as exc:  # the answer FastAPI's exception handler gives
            answer = self.exception_handlers[Exception](request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)
