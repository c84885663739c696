"""The consent app: ``uvicorn --factory services.consent.main:create_app``."""

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from services.consent.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Consent service",
        description=(
            "The privacy center: policy versions, consents, rights requests and the "
            "processing ledger. Policy sections 2G, 2H, 2J, 4 and 5."
        ),
    )
