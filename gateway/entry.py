"""The gateway's plain ASGI entry: the hot path outside FastAPI's routing.

:class:`GatewayApp` is the gateway's FastAPI app with one change at the door: a request to
a path under one of the upstreams' prefixes (``/identity/``, ``/orders/``, ``/consent/``,
``/transfer/``) goes straight to :func:`gateway.handler.serve`, through the same
middleware the app was given (proxy headers, request id and request metrics), without
FastAPI's routing, dependency injection and exception middleware. The handler, its step list and its
problem+json answers are the ones FastAPI served before; an error the handler does not
expect is answered by the app's own handler for ``Exception`` (500 problem+json), as
FastAPI would have. Lifespan, the gateway's own routes (``/healthz``, ``/readyz``,
``/metrics``, OpenAPI) and any other path stay FastAPI's (its catch-all route sends an
unknown path to the same handler: 404 problem+json).
"""

from __future__ import annotations

import inspect
from functools import cached_property

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.handler import serve
from gateway.methods import as_get

__all__ = ["GatewayApp"]


class GatewayApp(FastAPI):
    """FastAPI for the gateway's own routes; every other request takes the hot path."""

    #: Paths under these prefixes (``/identity/``, ``/orders/``, ...: the upstreams of
    #: ``policy/routes.yaml``) take the hot path; set by :func:`gateway.main.create_app`.
    hot_prefixes: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.hot_prefixes):
            scope["app"] = self
            await self._hot_path(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "HEAD":  # RFC 9110 9.3.2
            await as_get(super().__call__, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    @cached_property
    def _hot_path(self) -> ASGIApp:
        app: ASGIApp = self._serve
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await serve(scope, receive)
        except Exception as exc:  # the answer FastAPI's exception handler gives
            answer = self.exception_handlers[Exception](Request(scope, receive), exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)
