"""Volume API shapes (OB-L-7)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

#: The legal basis the year's volume needs (CAC Provisions on Promoting and Regulating
#: Cross-Border Data Flows, 2024, arts. 5, 7, 8).
Requirement = Literal["consent_only", "standard_contract_or_certification", "security_assessment"]
Counter = Literal["non_sensitive", "sensitive"]


class VolumeAlert(BaseModel):
    """A threshold the year's count has come within 80 % of, or reached."""

    counter: Counter
    threshold: int = Field(description="persons from which the stricter basis is needed")
    persons: int
    share: float = Field(description="persons / threshold")
    reached: bool = Field(description="the threshold itself is reached")
    requires: Requirement = Field(description="the basis needed once it is reached")


class VolumeView(BaseModel):
    """The year's counters: unique persons whose personal information went abroad,
    sensitive apart, transfers necessary to perform a contract not counted."""

    year: int = Field(description="calendar year, China Standard Time; counts restart on 1 January")
    non_sensitive_persons: int
    sensitive_persons: int
    requires: Requirement = Field(description="the legal basis the counts reached need")
    alerts: list[VolumeAlert]
    generated_at: datetime
