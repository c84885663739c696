"""Search API shapes. ``search_history`` is the catalogue's field
``orders.search.search_history``; the words travel in a POST body, never in a URL (a query
string reaches access lines and proxies' logs)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.orders.goods.schemas import GoodsView

MAX_QUERY_CHARS = 100


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["龙井 tea"])


class SearchResults(BaseModel):
    goods: list[GoodsView]
    entry_id: str = Field(description="the search's entry in the caller's search history")


class SearchEntryView(BaseModel):
    entry_id: str
    query: str
    result_count: int
    searched_at: datetime


class SearchHistoryView(BaseModel):
    search_history: list[SearchEntryView]
    count: int


class HistoryCleared(BaseModel):
    deleted: int = Field(description="how many entries were deleted")


class Recommendations(BaseModel):
    """Goods matching the caller's searches made with the recommendation.personalised
    consent; searches made without it never appear here."""

    goods: list[GoodsView]
