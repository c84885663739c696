"""CORS at the gateway (the Fetch standard's CORS protocol): web pages of the origins in
``GATEWAY_CORS_ALLOW_ORIGINS`` may call the gateway from a browser; none may by default.

Starlette's ``CORSMiddleware``, outermost, so a preflight is answered before anything
else (and never reaches the route table, the token check or an upstream): an allowed
origin gets it back in ``Access-Control-Allow-Origin`` with
``Access-Control-Allow-Credentials: true`` (the token in ``Authorization``, cookies),
the methods and request headers below, and ``Access-Control-Max-Age``; another origin's
preflight is refused (400 problem+json ``cors-refused``) and its simple requests carry no
CORS headers, so the browser keeps the answer from the page. Answers expose the headers a
web client acts on.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from gateway.config import Settings
from gateway.handler import RENEWAL_HEADER
from kit.errors import problem

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "EXPOSED_HEADERS", "ProblemCORS", "add_cors"]

ALLOWED_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: Request headers a page may send beyond the CORS-safelisted ones.
ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Purpose",
    "X-Request-ID",
    "If-None-Match",
)
#: Response headers a page may read beyond the safelisted ones: the renewal a user must
#: make, when to retry (429, 503), the request id to report, the policy link, the bearer
#: challenge, and the validator for revalidating.
EXPOSED_HEADERS: Final = (
    RENEWAL_HEADER,
    "Retry-After",
    "X-Request-ID",
    "Link",
    "WWW-Authenticate",
    "ETag",
)


class ProblemCORS(CORSMiddleware):
    """Starlette's middleware, with a refused preflight answered as problem+json
    (``cors-refused``, naming what was refused: origin, method or headers) instead of
    plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        answer = problem(
            400,
            title="CORS request refused",
            detail=f"this cross-origin request is not allowed: {refused}",
            code="cors-refused",
            refused=[item.strip() for item in refused.split(",")],
        )
        for name, value in response.headers.items():
            if name.lower().startswith(("access-control-", "vary")):
                answer.headers[name] = value
        return answer


def add_cors(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        ProblemCORS,
        allow_origins=list(settings.cors_allow_origins),
        allow_credentials=True,
        allow_methods=list(ALLOWED_METHODS),
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=settings.cors_max_age_s,
    )
