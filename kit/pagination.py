"""Page parameters shared by every list route (OWASP API4: no list without a bound).

``PageLimit`` is how many items a page holds (1 to :data:`MAX_PAGE_SIZE`, 422 past it) and
``PageOffset`` how many are skipped (bounded: a deeper offset is no page anyone reads, and
past 2**63 the database fails). A route states its default: ``limit: PageLimit = 50``.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Query

MAX_PAGE_SIZE: Final = 100
MAX_OFFSET: Final = 1_000_000

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items skipped")]
