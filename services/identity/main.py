"""The identity app: ``uvicorn --factory services.identity.main:create_app``."""

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from services.identity.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Identity service",
        description=(
            "Real-name verification, accounts, the token issuer (JWKS) and partner clients. "
            "Policy sections 2A and 3."
        ),
    )
