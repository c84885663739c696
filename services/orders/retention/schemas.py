"""Retention API shapes: what a sweep did. Counts and ids only, no personal data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FieldRemoved(BaseModel):
    field: str = Field(description="a personal field of orders.order in the catalogue")
    retention: str = Field(description="its retention period in the catalogue")
    removed: int = Field(description="orders whose value of this field was deleted")


class SweepReport(BaseModel):
    ran_at: datetime = Field(description="the moment the sweep measured periods against")
    orders_examined: int
    orders_changed: int = Field(description="orders that lost at least one field")
    orders_anonymised: int = Field(description="orders with no personal field left")
    search_entries_deleted: int = Field(
        default=0, description="search history entries whose search_history period ended"
    )
    fields: list[FieldRemoved]
