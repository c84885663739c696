"""The privacy center's pages (``/privacy/...``): thin handlers over
:func:`gateway.privacy_web.client.call_gateway`, rendered by the templates beside this file.

Forms post back to the page (Post/Redirect/Get, 303); the session cookie is HttpOnly and
SameSite=Strict (Secure over HTTPS), so another site cannot post a form with it; and every
form carries an anti-forgery token besides (:func:`form_token`), refused with a page that
says nothing was changed when it is missing or wrong. Every page is sent with a
Content-Security-Policy allowing no script, and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from gateway.handler import Gateway
from gateway.privacy_web.client import SESSION_COOKIE, GatewayAnswer, call_gateway
from gateway.privacy_web.texts import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    TEXTS,
    Language,
    choose_language,
)
from kit.catalogue import Catalogue, DataCategory, Purpose
from kit.clock import CHINA_TZ
from kit.markdown import render_markdown
from kit.pagination import MAX_PAGE_SIZE, PageOffset
from kit.rights import UNRESTRICTABLE_KINDS

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


def _catalogue(request: Request) -> Catalogue | None:
    """The catalogue the gateway runs with (none without a gateway, as in some tests)."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    return None if gateway is None else gateway.context.catalogue


def _category_namer(catalogue: Catalogue | None, language: Language) -> Callable[[str], Markup]:
    """The templates' ``category(id)``: a data category's short name in the page's language
    (the catalogue's name_zh or name), its id kept as the title; an id the catalogue does
    not know (e.g. a parent such as user.contact) as itself."""
    categories = {c.id: c for c in catalogue.data_categories} if catalogue is not None else {}

    def category(category_id: str) -> Markup:
        known = categories.get(category_id)
        if known is None:
            return Markup('<span class="category">{}</span>').format(category_id)
        name = known.name_zh if language == "zh" else known.name
        return Markup('<span class="category" title="{}">{}</span>').format(category_id, name)

    return category


def _purpose_namer(catalogue: Catalogue | None, language: Language) -> Callable[[str], Markup]:
    """The templates' ``purpose(id)``: what a purpose is for, in the page's language (the
    catalogue's description_zh or description, English marked as such), its id kept as the
    title; an id the catalogue does not know as itself."""
    purposes = {p.id: p for p in catalogue.purposes} if catalogue is not None else {}

    def purpose(purpose_id: str) -> Markup:
        known = purposes.get(purpose_id)
        if known is None:
            return Markup('<span class="purpose">{}</span>').format(purpose_id)
        if language == "zh" and known.description_zh:
            return Markup('<span class="purpose" title="{}">{}</span>').format(
                purpose_id, known.description_zh
            )
        return Markup('<span class="purpose" title="{}"{}>{}</span>').format(
            purpose_id, Markup(' lang="en"') if language != "en" else "", known.description
        )

    return purpose


def _category_names(request: Request, disclosure: dict[str, Any]) -> list[str]:
    """A recipient disclosure's types of data as the consents page shows them: each category
    by its name in the page's language where the disclosure carries the category ids, else
    the transfer service's words."""
    catalogue = _catalogue(request)
    ids: list[str] = disclosure.get("data_categories") or []
    if catalogue is None or len(ids) != len(disclosure.get("data_types") or []):
        return list(disclosure.get("data_types") or [])
    known = {c.id: c for c in catalogue.data_categories}
    zh = _language(request) == "zh"
    words: list[str] = disclosure["data_types"]
    return [
        (known[i].name_zh if zh else known[i].name) if i in known else word
        for i, word in zip(ids, words, strict=True)
    ]


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = _language(request)
    secret, new_form_secret = _form_secret(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": TEXTS[language],
            "lang": language,
            "category": _category_namer(_catalogue(request), language),
            "purpose": _purpose_namer(_catalogue(request), language),
            "path": request.url.path,
            "csrf": form_token(secret),
            **context,
        },
        status_code=status_code,
        headers=_HEADERS,
    )
    if new_form_secret:
        _set_cookie(request, response, FORM_COOKIE, secret, max_age=None)
    return response


# --------------------------------------------------------------------------- anti-forgery
#: The cookie of a browser not signed in yet: the secret its sign-in form's token is made of.
FORM_COOKIE: Final = "privacy_form"
CSRF_FIELD: Final = "csrf"


def form_token(secret: str) -> str:
    """The anti-forgery token of the forms of one session: an HMAC keyed by the session's
    secret (the access token in the HttpOnly session cookie; before sign-in, a random
    value in :data:`FORM_COOKIE`). Another site can neither read nor compute it."""
    return hmac.new(secret.encode(), b"privacy-center-form", hashlib.sha256).hexdigest()


def _form_secret(request: Request) -> tuple[str, bool]:
    """The secret this browser's forms are bound to, and whether it is new (to be set)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        return session, False
    pending = request.cookies.get(FORM_COOKIE)
    if pending and len(pending) >= 32:
        return pending, False
    return secrets.token_urlsafe(32), True


def _form_forged(request: Request, token: str) -> bool:
    """Whether a posted form's token is missing or not this session's."""
    session = request.cookies.get(SESSION_COOKIE) or request.cookies.get(FORM_COOKIE)
    return not (session and token and hmac.compare_digest(token, form_token(session)))


def _forged(request: Request) -> HTMLResponse:
    return _page(request, "refused.html", status_code=403)


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None
) -> None:
    """Every cookie of the app: HttpOnly, SameSite=Strict, Secure when served over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/privacy",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


_Token = Annotated[str, Form(alias=CSRF_FIELD)]


def _see(path: str, *, done: str | None = None) -> RedirectResponse:
    target = f"{path}?done={quote(done)}" if done else path
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def _signed_out(request: Request) -> RedirectResponse:
    response = _see(_SIGN_IN, done="signed_out")
    response.delete_cookie(SESSION_COOKIE, path="/privacy")
    return response


async def _done(done: str | None = None) -> str | None:
    """The ``?done=`` a page is redirected with after a change (any other value: none)."""
    return done if done in _DONE else None


_DONE: Final = frozenset(
    {
        "access",
        "deletion",
        "consent",
        "signed_out",
        "correction",
        "withdraw_all",
        "restriction",
        "explanation",
        "portability",
        "lifted",
    }
)


@router.get("/", response_class=HTMLResponse)
async def sign_in_page(request: Request, done: Annotated[str | None, Depends(_done)]) -> Response:
    if request.cookies.get(SESSION_COOKIE):
        return _see("/privacy/consents")
    return _page(request, "sign_in.html", done=done)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    phone: Annotated[str, Form()],
    password: Annotated[str, Form()],
    token: _Token = "",
) -> Response:
    if _form_forged(request, token):
        return _forged(request)
    answer = await call_gateway(
        request, "POST", "/identity/login", json={"phone": phone, "password": password}
    )
    if not answer.ok:
        return _page(
            request, "sign_in.html", status_code=answer.status, error=answer.problem_detail
        )
    response = _see("/privacy/consents")
    _set_cookie(
        request, response, SESSION_COOKIE, answer.body["access_token"], max_age=SESSION_MAX_AGE_S
    )
    response.delete_cookie(FORM_COOKIE, path="/privacy")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, token: _Token = "") -> Response:
    if _form_forged(request, token):
        return _forged(request)
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
        recipients=await _recipient_consents(request, mine.body),
        done=done,
        error=None if mine.ok else mine.problem_detail,
    )


@router.post("/consents")
async def change_consent(
    request: Request,
    purpose: Annotated[str, Form()],
    granted: Annotated[bool, Form()],
    shown: Annotated[str, Form()] = "",
    token: _Token = "",
) -> Response:
    if _form_forged(request, token):
        return _forged(request)
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


# --------------------------------------------------------------------------- the ledger
#: Entries on one page of the ledger.
LEDGER_PAGE: Final = 20
_Filter = Annotated[str, Query(max_length=200)]


@router.get("/ledger", response_class=HTMLResponse)
async def ledger_page(
    *,
    request: Request,
    purpose: _Filter = "",
    category: _Filter = "",
    actor: _Filter = "",
    since: _Filter = "",
    until: _Filter = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """One page of the ledger, filtered as the form asks (empty: any), the filters' choices
    from what the ledger names; the previous and next pages keep the filters."""
    chosen = {
        name: value
        for name, value in {
            "purpose": purpose,
            "category": category,
            "actor": actor,
            "since": since,
            "until": until,
        }.items()
        if value
    }
    params = {**chosen, "limit": str(LEDGER_PAGE), "offset": str(offset)}
    answer = await call_gateway(request, "GET", "/consent/ledger/me", params=params)
    if _refused(answer):
        return _signed_out(request)
    choices = await call_gateway(request, "GET", "/consent/ledger/me/choices")
    empty: dict[str, Any] = {"entries": [], "chain_valid": True, "total": 0, "next_offset": None}
    page: dict[str, Any] = answer.body if answer.ok else empty
    previous = max(0, offset - LEDGER_PAGE) if offset > 0 else None
    return _page(
        request,
        "ledger.html",
        entries=page["entries"],
        total=page["total"],
        first=offset + 1,
        last=offset + len(page["entries"]),
        choices=choices.body if choices.ok else {"purposes": [], "categories": [], "actors": []},
        chosen=chosen,
        previous=None if previous is None else _ledger_link(chosen, previous),
        next=None if page["next_offset"] is None else _ledger_link(chosen, page["next_offset"]),
        chain_valid=page["chain_valid"],
        error=None if answer.ok else answer.problem_detail,
    )


def _ledger_link(chosen: dict[str, str], offset: int) -> str:
    return "/privacy/ledger?" + urlencode({**chosen, "offset": offset})


# --------------------------------------------------------------------------- rights requests
#: The order fields a correction may name (orders applies them: services/orders/rights).
CORRECTABLE: Final = (
    "consignee_name",
    "consignee_phone",
    "address_detail",
    "postal_code",
    "invoice_title",
    "invoice_email",
)
_Text = Annotated[str, Form(max_length=200)]


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(request: Request, done: Annotated[str | None, Depends(_done)]) -> Response:
    answer = await call_gateway(request, "GET", "/consent/rights-requests/me")
    if _refused(answer):
        return _signed_out(request)
    # A correction names its order by number, typed in: the page reads no order (reading
    # one would process its consignee's data only to show a list).
    purposes, categories = _restrictable(request)
    return _page(
        request,
        "requests.html",
        requests=answer.body if answer.ok else [],
        correctable=CORRECTABLE,
        restrictable_purposes=purposes,
        restrictable_categories=categories,
        done=done,
        error=None if answer.ok else answer.problem_detail,
    )


def _restrictable(request: Request) -> tuple[list[Purpose], list[DataCategory]]:
    """What a restriction may name, from the catalogue the gateway runs with: purposes not
    imposed by law, and the personal data categories (the consent service refuses others)."""
    catalogue = _catalogue(request)
    if catalogue is None:
        return [], []
    purposes = [p for p in catalogue.purposes if p.kind not in UNRESTRICTABLE_KINDS]
    categories = [c for c in catalogue.data_categories if c.personal]
    return purposes, categories


@dataclass(frozen=True)
class RequestForm:
    """What the requests page's forms post: ``kind`` and the fields of that kind."""

    kind: str
    order: str = ""
    field: str = ""
    value: str = ""
    purposes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    destination_name: str = ""
    destination_url: str = ""


def _request_body(form: RequestForm) -> dict[str, Any] | str:
    """The rights request the form asks for, or which form field is wrong."""
    kind = form.kind
    if kind in {"access", "deletion", "withdraw_all", "explanation"}:
        return {"kind": kind}
    if kind == "restriction":
        if not form.purposes and not form.categories:
            return "restriction"
        return {"kind": kind, "purposes": list(form.purposes), "categories": list(form.categories)}
    if kind == "portability":
        if not form.destination_name.strip():
            return "destination_name"
        if not form.destination_url.strip():
            return "destination_url"
        destination = {"name": form.destination_name.strip(), "url": form.destination_url.strip()}
        return {"kind": kind, "destination": destination}
    if kind != "correction":
        return "kind"
    if not form.order:
        return "order"
    if form.field not in CORRECTABLE:
        return "field"
    if not form.value.strip():
        return "value"
    corrections = {"orders": {"order_id": form.order, form.field: form.value.strip()}}
    return {"kind": kind, "corrections": corrections}


_Choices = Annotated[list[str], Form(max_length=50)]
_Url = Annotated[str, Form(max_length=2000)]


@router.post("/requests")
async def file_request(
    *,
    request: Request,
    kind: Annotated[str, Form()],
    order: _Text = "",
    field: _Text = "",
    value: _Text = "",
    purposes: _Choices | None = None,
    categories: _Choices | None = None,
    destination_name: _Text = "",
    destination_url: _Url = "",
    token: _Token = "",
) -> Response:
    if _form_forged(request, token):
        return _forged(request)
    form = RequestForm(
        kind=kind,
        order=order,
        field=field,
        value=value,
        purposes=tuple(purposes or ()),
        categories=tuple(categories or ()),
        destination_name=destination_name,
        destination_url=destination_url,
    )
    body = _request_body(form)
    if isinstance(body, str):
        error = TEXTS[_language(request)]["missing_" + body]
        return _page(request, "error.html", status_code=422, error=error)
    answer = await call_gateway(request, "POST", "/consent/rights-requests", json=body)
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


def _request_path(request_id: str, tail: str = "") -> str:
    return f"/consent/rights-requests/{quote(request_id, safe='')}{tail}"


@router.post("/requests/{request_id}/lift")
async def lift_restriction(request: Request, request_id: str, token: _Token = "") -> Response:
    """Lift the person's restriction: processing resumes."""
    if _form_forged(request, token):
        return _forged(request)
    answer = await call_gateway(request, "POST", _request_path(request_id, "/lift"))
    if _refused(answer):
        return _signed_out(request)
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return _see("/privacy/requests", done="lifted")


@router.get("/requests/{request_id}/explanation", response_class=HTMLResponse)
async def explanation_page(request: Request, request_id: str) -> Response:
    """The answer to an explanation request: each kind of the person's data, for which
    purposes, by whom, on which legal basis, and how long it is kept."""
    answer = await call_gateway(request, "GET", _request_path(request_id, "/explanation"))
    if _refused(answer):
        return _signed_out(request)
    return _page(
        request,
        "explanation.html",
        status_code=answer.status if not answer.ok else 200,
        explanation=answer.body if answer.ok else None,
        error=None if answer.ok else answer.problem_detail,
    )


@router.post("/requests/{request_id}/delivery", response_class=HTMLResponse)
async def deliver_copy(
    *,
    request: Request,
    request_id: str,
    phone: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=200)],
    token: _Token = "",
) -> Response:
    """Send the portable copy to the processor the person named. The consent service
    wants a password sign-in of the last minutes for it, so the form asks for the password
    again; the fresh token is used for this call only (the session keeps its own). The
    receipt is shown at once: the API keeps no page of it to come back to."""
    if _form_forged(request, token):
        return _forged(request)
    login = await call_gateway(
        request, "POST", "/identity/login", json={"phone": phone, "password": password}
    )
    if not login.ok:
        return _page(request, "error.html", status_code=login.status, error=login.problem_detail)
    answer = await call_gateway(
        request,
        "POST",
        _request_path(request_id, "/delivery"),
        token=login.body["access_token"],
    )
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return _page(request, "delivered.html", receipt=answer.body)


# --------------------------------------------------------------------------- notices
#: Notices on one page.
NOTICES_PAGE: Final = 10


@router.get("/notices", response_class=HTMLResponse)
async def notices_page(request: Request, offset: PageOffset = 0) -> Response:
    """The person's notices (security incidents, ceased purposes, a change of controller),
    newest first with their full text, a page at a time; one more is asked for than shown,
    to know whether older ones exist."""
    answer = await call_gateway(
        request,
        "GET",
        "/consent/notices/me",
        params={"limit": str(NOTICES_PAGE + 1), "offset": str(offset)},
    )
    if _refused(answer):
        return _signed_out(request)
    notices: list[dict[str, Any]] = answer.body if answer.ok else []
    return _page(
        request,
        "notices.html",
        notices=notices[:NOTICES_PAGE],
        older=offset + NOTICES_PAGE if len(notices) > NOTICES_PAGE else None,
        newer=max(offset - NOTICES_PAGE, 0) if offset else None,
        path=_here(request),
        error=None if answer.ok else answer.problem_detail,
    )


# ------------------------------------------------------------------ overseas recipients,
# cross-border consents per recipient, the policy's versions

CROSS_BORDER: Final = "cross_border.transfer"
#: Transfers a page of ``/transfer/transfers/me`` holds (its largest page).
TRANSFERS_PAGE: Final = MAX_PAGE_SIZE


def _china_time(value: str) -> str:
    """An API timestamp (ISO 8601) as the person's wall clock reads it (China time)."""
    return datetime.fromisoformat(value).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


templates.env.filters["china_time"] = _china_time


def _here(request: Request) -> str:
    """The page's path with its query: where the language switch comes back to."""
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path


def _digest(disclosure: dict[str, Any]) -> str:
    """SHA-256 of a recipient's disclosure as the page showed it (canonical JSON)."""
    canonical = json.dumps(disclosure, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _my_transfers(request: Request, *, offset: int = 0) -> GatewayAnswer:
    return await call_gateway(
        request,
        "GET",
        "/transfer/transfers/me",
        params={"limit": str(TRANSFERS_PAGE), "offset": str(offset)},
    )


def _by_recipient(transfers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The transfers grouped by recipient, the recipient with the newest one first."""
    groups: dict[str, dict[str, Any]] = {}
    for transfer in transfers:
        recipient = transfer["recipient"]
        groups.setdefault(recipient["id"], {"recipient": recipient, "transfers": []})
        groups[recipient["id"]]["transfers"].append(transfer)
    return list(groups.values())


@router.get("/overseas", response_class=HTMLResponse)
async def overseas_page(request: Request, offset: PageOffset = 0) -> Response:
    answer = await _my_transfers(request, offset=offset)
    if _refused(answer):
        return _signed_out(request)
    transfers: list[dict[str, Any]] = answer.body if answer.ok else []
    return _page(
        request,
        "overseas.html",
        recipients=_by_recipient(transfers),
        older=offset + TRANSFERS_PAGE if len(transfers) == TRANSFERS_PAGE else None,
        newer=max(offset - TRANSFERS_PAGE, 0) if offset else None,
        path=_here(request),
        error=None if answer.ok else answer.problem_detail,
    )


async def _recipient_consents(request: Request, mine: Any) -> list[dict[str, Any]]:
    """Each overseas recipient the person decides on, by name: those their data went to or
    waits for (their transfers) and those they decided on before, each with its disclosure
    (None if the transfer service no longer has it) and whether the consent is in force."""
    decided: dict[str, dict[str, Any]] = {
        value["recipient_id"]: value
        for value in (mine or {}).get("consents", [])
        if value["purpose"] == CROSS_BORDER and value.get("recipient_id")
    }
    disclosures: dict[str, dict[str, Any] | None] = {}
    offset = 0
    while True:
        page = await _my_transfers(request, offset=offset)
        transfers: list[dict[str, Any]] = page.body if page.ok else []
        for transfer in transfers:
            disclosures.setdefault(transfer["recipient"]["id"], transfer["recipient"])
        if len(transfers) < TRANSFERS_PAGE:
            break
        offset += TRANSFERS_PAGE
    for recipient_id in sorted(decided.keys() - disclosures.keys()):
        shown = await call_gateway(
            request, "GET", f"/transfer/recipients/{quote(recipient_id, safe='')}/disclosure"
        )
        disclosures[recipient_id] = shown.body if shown.ok else None
    recipients = [
        {
            "id": recipient_id,
            "name": (disclosure or {}).get("name")
            or decided[recipient_id].get("recipient_name")
            or recipient_id,
            "disclosure": disclosure,
            "digest": _digest(disclosure) if disclosure else "",
            "data_types": _category_names(request, disclosure) if disclosure else [],
            "granted": bool(decided.get(recipient_id, {}).get("granted")),
        }
        for recipient_id, disclosure in disclosures.items()
    ]
    return sorted(recipients, key=lambda recipient: recipient["name"])


@router.post("/consents/overseas")
async def change_recipient_consent(
    request: Request,
    recipient: Annotated[str, Form(min_length=1, max_length=64)],
    granted: Annotated[bool, Form()],
    disclosure: Annotated[str, Form(max_length=64)] = "",
    token: _Token = "",
) -> Response:
    """Grant (with the recipient's disclosure the page showed, checked unchanged by its
    digest) or withdraw the cross-border consent to one overseas recipient."""
    if _form_forged(request, token):
        return _forged(request)
    shown: dict[str, Any] = {"recipient": {"id": recipient}}
    if granted:
        found = await call_gateway(
            request, "GET", f"/transfer/recipients/{quote(recipient, safe='')}/disclosure"
        )
        if _refused(found):
            return _signed_out(request)
        if not found.ok:
            return _page(
                request, "error.html", status_code=found.status, error=found.problem_detail
            )
        if _digest(found.body) != disclosure:
            return _page(
                request,
                "error.html",
                status_code=409,
                error=TEXTS[_language(request)]["disclosure_changed"],
            )
        shown = {
            "text": TEXTS[_language(request)]["cross_border_shown"],
            "page": "/privacy/consents",
            "language": _language(request),
            "recipient": found.body,
            "data_types": _category_names(request, found.body),
        }
    answer = await call_gateway(
        request,
        "POST",
        "/consent/consents",
        json={"purpose": CROSS_BORDER, "granted": granted, "shown": shown},
    )
    if _refused(answer):
        return _signed_out(request)
    if not answer.ok:
        return _page(request, "error.html", status_code=answer.status, error=answer.problem_detail)
    return _see("/privacy/consents", done="consent")


async def _signed_in(request: Request) -> dict[str, Any] | None:
    """The person's policy agreements if they are signed in (the policy pages are public)."""
    if not request.cookies.get(SESSION_COOKIE):
        return None
    mine = await call_gateway(request, "GET", "/consent/policy/agreements/me")
    return mine.body if mine.ok else None


PolicyVersion = Annotated[str, Query(min_length=1, max_length=32)]


@router.get("/policy", response_class=HTMLResponse)
async def policy_page(request: Request, version: PolicyVersion | None = None) -> Response:
    archive = await call_gateway(request, "GET", "/consent/policy/versions", token="")
    path = f"/consent/policy/versions/{quote(version, safe='')}" if version else "/consent/policy"
    chosen = await call_gateway(request, "GET", path, token="")
    agreements = await _signed_in(request)
    failed = next((answer for answer in (chosen, archive) if not answer.ok), None)
    return _page(
        request,
        "policy.html",
        status_code=failed.status if failed else 200,
        path=_here(request),
        signed_in=agreements is not None,
        versions=archive.body if archive.ok else [],
        chosen=chosen.body if chosen.ok else None,
        text=Markup(render_markdown(chosen.body["text"], top_heading=3)) if chosen.ok else "",
        agreed={a["version"] for a in (agreements or {}).get("agreements", [])},
        error=failed.problem_detail if failed else None,
    )


@router.get("/policy/diff", response_class=HTMLResponse)
async def policy_diff_page(
    request: Request,
    from_version: Annotated[str, Query(alias="from", min_length=1, max_length=32)],
    to_version: Annotated[str, Query(alias="to", min_length=1, max_length=32)],
) -> Response:
    answer = await call_gateway(
        request,
        "GET",
        "/consent/policy/diff",
        params={"from": from_version, "to": to_version},
        token="",
    )
    newer = await call_gateway(
        request, "GET", f"/consent/policy/versions/{quote(to_version, safe='')}", token=""
    )
    agreements = await _signed_in(request)
    lines = _diff_lines(answer.body["diff"]) if answer.ok else []
    return _page(
        request,
        "policy_diff.html",
        status_code=answer.status if not answer.ok else 200,
        path=_here(request),
        signed_in=agreements is not None,
        diff=answer.body if answer.ok else None,
        kinds=newer.body.get("major_change_kinds", []) if answer.ok and newer.ok else [],
        lines=lines,
        added=sum(kind == "added" for kind, _ in lines),
        removed=sum(kind == "removed" for kind, _ in lines),
        error=None if answer.ok else answer.problem_detail,
    )


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines as ``(kind, text)``: ``hunk`` (a new hunk), ``added``,
    ``removed`` or ``same``; the file headers before the first hunk are left out (the page
    names the versions)."""
    lines: list[tuple[str, str]] = []
    for line in diff.splitlines():
        if line.startswith("@@"):
            lines.append(("hunk", ""))
        elif lines:  # past the headers
            kind = {"+": "added", "-": "removed"}.get(line[:1], "same")
            lines.append((kind, line[1:]))
    return lines
