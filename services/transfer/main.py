"""The transfer app: ``uvicorn --factory services.transfer.main:create_app``."""

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from services.transfer.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Transfer service",
        description=(
            "Cross-border recipients, their legal bases, and transfers that keep the law. "
            "Policy section 4 (storage location) and 3."
        ),
    )
