"""The gateway app: ``uvicorn --factory gateway.main:create_app``."""

from fastapi import FastAPI

from gateway.config import Settings
from kit.app import create_app as create_kit_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Gateway",
        description=(
            "The API gateway: authorisation, purpose binding, consent enforcement and "
            "minimum-necessary field filtering."
        ),
    )
