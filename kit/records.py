"""Records kept at least three years (OB-L-9): records of sharing and of entrusted
processing, and personal information protection impact assessments (PIPL art. 56; Network
Data Security Management Regulations art. 12).

Whatever the catalogue's period for such a record says, a retention sweep never removes it
before :data:`MINIMUM` has run from the record's date: :func:`kept_until` is the later of
the two, and :func:`shortest_span` bounds a sweep's query the same way. A catalogue that
shortens such a period therefore keeps the records longer, never shorter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from kit.catalogue import Duration, RetentionPeriod

MINIMUM: Final = Duration.parse("P3Y")


def kept_until(period: RetentionPeriod, made_at: datetime) -> datetime:
    """When a record made at ``made_at`` may go: its catalogue period, never less than
    three years."""
    return max(period.expires_at(made_at), MINIMUM.after(made_at))


def shortest_span(period: RetentionPeriod) -> timedelta:
    """A span no record under ``period`` expires before (a sweep's query bound)."""
    return max(period.period.shortest_span(), MINIMUM.shortest_span())
