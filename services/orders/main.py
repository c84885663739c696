"""The orders app: ``uvicorn --factory services.orders.main:create_app``."""

from fastapi import FastAPI

from kit.app import create_app as create_kit_app
from services.orders.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Orders service",
        description=(
            "Cart, orders, delivery, invoices, customs data and partner assignment. Policy "
            "sections 2C, 2D and 4."
        ),
    )
