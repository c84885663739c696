"""Mini-program API shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.identity.sms.schemas import POLICY_VERSION_PATTERN, SignedIn

__all__ = ["MiniProgramLogin", "PhoneBinding", "PhoneBound", "SignedIn"]

Platform = Literal["wechat", "alipay"]


class MiniProgramLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform = "wechat"
    code: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[0-9A-Za-z_\-]+$",
        description="the code the platform gave the mini-program (WeChat `wx.login`, "
        "Alipay `my.getAuthCode`)",
    )
    policy_version: str = Field(
        pattern=POLICY_VERSION_PATTERN,
        description="the privacy policy version the user agreed to (the mini-program's "
        "privacy guide); recorded as the agreement when this sign-in opens the account",
    )


class PhoneBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[0-9A-Za-z_\-]+$",
        description="the one-time code WeChat `getPhoneNumber` gave the mini-program",
    )


class PhoneBound(BaseModel):
    account_id: str
    phone: str | None = Field(description="the bound number, masked as the catalogue says")
