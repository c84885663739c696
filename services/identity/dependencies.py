"""What identity's routers ask FastAPI for: its settings, the caller, the authority."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kit.app import AppContext, app_context
from services.identity.config import Settings
from services.identity.mini_program.platform import MiniProgramPlatform
from services.identity.sms.sender import SmsSender
from services.identity.verification.authority import AuthorityAdapter


async def identity_settings(context: Annotated[AppContext, Depends(app_context)]) -> Settings:
    assert isinstance(context.settings, Settings)
    return context.settings


async def authority(request: Request) -> AuthorityAdapter:
    adapter: AuthorityAdapter = request.app.state.authority
    return adapter


async def sms_sender(request: Request) -> SmsSender:
    sender: SmsSender = request.app.state.sms_sender
    return sender


async def platform(request: Request) -> MiniProgramPlatform:
    """WeChat's adapter (the phone-number exchange)."""
    adapters: dict[str, MiniProgramPlatform] = request.app.state.mini_program_platforms
    return adapters["wechat"]


async def platforms(request: Request) -> dict[str, MiniProgramPlatform]:
    adapters: dict[str, MiniProgramPlatform] = request.app.state.mini_program_platforms
    return adapters


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(identity_settings)]
AuthorityDep = Annotated[AuthorityAdapter, Depends(authority)]
ClientAddress = Annotated[str, Depends(client_address)]
SmsSenderDep = Annotated[SmsSender, Depends(sms_sender)]
PlatformDep = Annotated[MiniProgramPlatform, Depends(platform)]
PlatformsDep = Annotated[dict[str, MiniProgramPlatform], Depends(platforms)]
