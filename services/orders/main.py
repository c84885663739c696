"""The orders app: ``uvicorn --factory services.orders.main:create_app``."""

from fastapi import FastAPI

from kit.app import AppContext
from kit.app import create_app as create_kit_app
from services.orders.cart import service as cart_service
from services.orders.cart.router import router as cart_router
from services.orders.config import Settings
from services.orders.goods.router import router as goods_router
from services.orders.orders import service as orders_service
from services.orders.orders.router import router as orders_router


async def _start(app: FastAPI, context: AppContext) -> None:
    # The catalogue must describe every personal field this service stores.
    orders_service.check_catalogue(context.catalogue)
    cart_service.check_catalogue(context.catalogue)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_kit_app(
        settings=settings or Settings(),
        title="Orders service",
        description=(
            "Cart, orders, delivery, invoices, customs data and partner assignment. Policy "
            "sections 2C, 2D and 4."
        ),
        routers=[goods_router, cart_router, orders_router],
        on_startup=_start,
    )
