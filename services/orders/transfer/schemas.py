"""The answer of ``GET /transfer/orders/{order_id}``: the contract of the transfer
service's ``HttpOrderFetcher`` (``services/transfer/transfers/fetcher.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TransferOrderFields(BaseModel):
    order_id: str
    subject: str = Field(description="the buyer's pseudonymous account id, as asked")
    fields: dict[str, Any] = Field(
        description="the requested personal fields that cross_border.transfer may see and "
        "that still hold a value, masked as the catalogue says; nothing else"
    )
