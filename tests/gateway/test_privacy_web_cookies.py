"""The privacy center's cookies (:mod:`gateway.privacy_web.router`): HttpOnly and
SameSite=Strict always, Secure when the page is served over HTTPS, and a sign-in form posted
without the token of the browser's own sign-in page signs no one in. The pages are mounted
on a bare app whose ``/identity/login`` answers as identity does, so the sign-in's call
through the app (:func:`gateway.privacy_web.client.call_gateway`) stays in process."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from gateway.privacy_web import router

TOKEN = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def privacy_app() -> FastAPI:
    app = FastAPI()
    app.include_router(router)

    @app.post("/identity/login")
    async def login() -> dict[str, str]:
        return {"access_token": "header.payload.signature"}

    return app


def set_cookie(answer: httpx.Response, name: str) -> str:
    (found,) = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_cookies_are_httponly_strict_and_secure_over_https(scheme: str) -> None:
    transport = httpx.ASGITransport(app=privacy_app())
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://shop.test") as client:
        sign_in_page = await client.get("/privacy/")
        form_cookie = set_cookie(sign_in_page, "privacy_form")
        found = TOKEN.search(sign_in_page.text)
        assert found is not None
        credentials = {"phone": "13800138000", "password": "a password"}

        forged = await client.post("/privacy/sign-in", data=credentials)
        assert forged.status_code == 403
        assert not [c for c in forged.headers.get_list("set-cookie") if "privacy_session" in c]

        signed_in = await client.post("/privacy/sign-in", data={**credentials, "csrf": found[1]})
        assert signed_in.status_code == 303
        session_cookie = set_cookie(signed_in, "privacy_session")
    for cookie in (form_cookie, session_cookie):
        attributes = {part.strip().split("=")[0] for part in cookie.split(";")[1:]}
        assert {"HttpOnly", "SameSite", "Path"} <= attributes
        assert "SameSite=strict" in cookie and "Path=/privacy" in cookie
        assert ("Secure" in attributes) is (scheme == "https")
