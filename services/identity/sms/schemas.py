"""SMS sign-in API shapes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.identity.tokens.schemas import ClientType, TokenResponse

POLICY_VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.\-]{0,39}$"


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])


class CodeSent(BaseModel):
    """Said alike whether or not the phone has an account."""

    expires_in: int = Field(description="seconds the code stays valid")
    resend_after: int = Field(description="seconds before another code may be asked for")


class SmsSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])
    code: str = Field(pattern=r"^\d{6}$", examples=["123456"])
    policy_version: str = Field(
        pattern=POLICY_VERSION_PATTERN,
        description="the privacy policy version the user agreed to on the sign-in screen; "
        "recorded as the agreement when this sign-in opens the account",
    )
    client_type: ClientType = "app"


class SignedIn(TokenResponse):
    new_account: bool = Field(description="true when this sign-in registered the account")
