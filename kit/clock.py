"""The calendar the policy and the law count days on: China Standard Time (UTC+8).

Ages, policy effective dates and legal deadlines are counted in whole Chinese calendar
days, whatever the server's own time zone is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

CHINA_TZ: Final = timezone(timedelta(hours=8), "Asia/Shanghai")


def china_today() -> date:
    """Today's date in China."""
    return datetime.now(UTC).astimezone(CHINA_TZ).date()
