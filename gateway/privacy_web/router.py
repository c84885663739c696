"""The privacy center's pages (``/privacy/...``): thin handlers over
:func:`gateway.privacy_web.client.call_gateway`, rendered by the templates beside this file.

Forms post back to the page (Post/Redirect/Get, 303); the session cookie is HttpOnly and
SameSite=Strict, so another site cannot post a form with it; every page is sent with a
Content-Security-Policy allowing no script, and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from gateway.privacy_web.client import SESSION_COOKIE, GatewayAnswer, call_gateway
from gateway.privacy_web.texts import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    TEXTS,
    Language,
    choose_language,
)

__all__ = ["router"]

router = APIRouter(prefix="/privacy", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

#: Seconds the session cookie lives: an access token's lifetime (it is refused after).
SESSION_MAX_AGE_S: Final = 15 * 60
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SIGN_IN: Final = "/privacy/"


def _language(request: Request) -> Language:
    return choose_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = _language(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"t": TEXTS[language], "lang": language, "path": request.url.path, **context},
        status_code=status_code,
        headers=_HEADERS,
    )
    return response


def _see(path: str, *, done: str | None = None) -> RedirectResponse:
    target = f"{path}?done={quote(done)}" if done else path
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def _signed_out(request: Request) -> RedirectResponse:
    response = _see(_SIGN_IN, done="signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/privacy")
    return response


async def _done(done: str | None = None) -> str | None:
    """The ``?done=`` a page is redirected with after a change (any other value: none)."""
    return done if done in {"access", "deletion", "consent", "signed_out"} else None


@router.get("/", response_class=HTMLResponse)
async def sign_in_page(request: Request, done: Annotated[str | None, Depends(_done)]) -> Response:
    if request.cookies.get(SESSION_COOKIE):
        return _see("/privacy/consents")
    return _page(request, "sign_in.html", done=done)


@router.post("/sign-in")
async def sign_in(
    request: Request, phone: Annotated[str, Form()], password: Annotated[str, Form()]
) -> Response:
    answer = await call_gateway(
        request, "POST", "/identity/login", json={"phone": phone, "password": password}
    )
    if not answer.ok:
        return _page(
            request, "sign_in.html", status_code=answer.status, error=answer.problem_detail
        )
    response = _see("/privacy/consents")
    response.set_cookie(
        SESSION_COOKIE,
        answer.body["access_token"],
        max_age=SESSION_MAX_AGE_S,
        path="/privacy",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    response = _see(_SIGN_IN)
    response.delete_cookie(SESSION_COOKIE, path="/privacy")
    return response


@router.get("/language/{language}")
async def switch_language(request: Request, language: str, next: str = _SIGN_IN) -> Response:
    target = next if next.startswith("/privacy/") and "//" not in next else _SIGN_IN
    response = _see(target)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 86400, path="/privacy", samesite="lax"
        )
    return response


def _refused(answer: GatewayAnswer) -> bool:
    return answer.status == 401


@router.get("/consents", response_class=HTMLResponse)
async def consents_page(request: Request, done: Annotated[str | None, Depends(_done)]) -> Response:
    mine = await call_gateway(request, "GET", "/consent/consents/me")
    if _refused(mine):
        return _signed_out(request)
    purposes = await call_gateway(request, "GET", "/consent/consents/purposes")
    granted = {value["key"]: value["granted"] for value in (mine.body or {}).get("consents", [])}
    return _page(
        request,
        "consents.html",
        purposes=purposes.body if purposes.ok else [],
        granted=granted,
        done=done,
        error=None if mine.ok else mine.problem_detail,
    )


@router.post("/consents")
async def change_consent(
    request: Request,
    purpose: Annotated[str, Form()],
    granted: Annotated[bool, Form()],
    shown: Annotated[str, Form()] = "",
) -> Response:
    body = {
        "purpose": purpose,
        "granted": granted,
        "shown": {"text": shown, "page": "/privacy/consents", "language": _language(request)},
    }
    answer = await call_gateway(request, "POST", "/consent/consents", json=body)
    if _refused(answer):
        return _signed_out(request)
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return _see("/privacy/consents", done="consent")


@router.get("/ledger", response_class=HTMLResponse)
async def ledger_page(request: Request, purpose: str = "") -> Response:
    answer = await call_gateway(request, "GET", "/consent/ledger/me", params={"limit": "100"})
    if _refused(answer):
        return _signed_out(request)
    page: dict[str, Any] = answer.body if answer.ok else {"entries": [], "chain_valid": True}
    entries: list[dict[str, Any]] = page["entries"]
    purposes = sorted({entry["purpose"] for entry in entries})
    if purpose:
        entries = [entry for entry in entries if entry["purpose"] == purpose]
    return _page(
        request,
        "ledger.html",
        entries=entries,
        purposes=purposes,
        chosen=purpose,
        chain_valid=page["chain_valid"],
        error=None if answer.ok else answer.problem_detail,
    )


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(request: Request, done: Annotated[str | None, Depends(_done)]) -> Response:
    answer = await call_gateway(request, "GET", "/consent/rights-requests/me")
    if _refused(answer):
        return _signed_out(request)
    return _page(
        request,
        "requests.html",
        requests=answer.body if answer.ok else [],
        done=done,
        error=None if answer.ok else answer.problem_detail,
    )


@router.post("/requests")
async def file_request(request: Request, kind: Annotated[str, Form()]) -> Response:
    if kind not in {"access", "deletion"}:
        return _page(request, "error.html", status_code=422, error=f"kind: {kind}")
    answer = await call_gateway(request, "POST", "/consent/rights-requests", json={"kind": kind})
    if _refused(answer):
        return _signed_out(request)
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return _see("/privacy/requests", done=kind)


@router.get("/requests/{request_id}/export")
async def download_export(request: Request, request_id: str) -> Response:
    answer = await call_gateway(
        request, "GET", f"/consent/rights-requests/{quote(request_id, safe='')}/export"
    )
    if _refused(answer):
        return _signed_out(request)
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return Response(
        answer.content,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="privacy-export-{request_id}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
