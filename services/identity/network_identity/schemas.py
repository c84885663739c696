"""Network identity API shapes (OB-L-11)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.identity.network_identity.adapter import NetworkLevel


class NetworkIdentityRequest(BaseModel):
    """The one-time credential the app obtained from the national service."""

    model_config = ConfigDict(extra="forbid")

    credential: str = Field(min_length=8, max_length=4096)


class NetworkIdentityView(BaseModel):
    """What is kept: the outcome, the level and when; the network number is kept but not
    sent back (the app does not need it)."""

    authenticated: bool
    level: NetworkLevel
    verified_at: datetime
    kept: list[str] = Field(description="what the account keeps of this authentication")
