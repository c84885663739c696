"""Security API shapes: an account's orders as ``security.anti_fraud`` sees them."""

from __future__ import annotations

from pydantic import BaseModel

from kit.fraud import FlagView
from services.orders.orders.schemas import OrderView


class SecurityOrdersView(BaseModel):
    account_id: str
    orders: list[OrderView]
    flags: list[FlagView]
