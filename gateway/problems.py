"""The error-code catalogue at the gateway: ``/problems`` lists every problem type the
suite answers with, ``/problems/<code>`` documents one (title, status, meaning, what to
do), as HTML with no script. A problem's ``type`` (``/problems/<code>``) resolves here;
an old spelling of a code (its ``aliases``) redirects (301) to the code's page.
Both pages carry an ``ETag`` and ``Cache-Control`` (:mod:`kit.http_cache`) and are
gzip-compressed like every long answer of the gateway."""

from __future__ import annotations

import re
from html import escape
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway.compression import compress
from kit.errors import NotFound
from kit.http_cache import cacheable
from kit.problem_types import ProblemType, load_problem_catalogue

__all__ = ["router"]

router = APIRouter()

#: A day: the catalogue only changes with a release, and caches revalidate after it.
CACHE_CONTROL: Final = "public, max-age=86400"
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
_CODE_SPAN = re.compile(r"`([^`]+)`")
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}dt{font-weight:bold;margin-top:1rem}code{background:#f3f3f3}"
)


def _text(value: str) -> str:
    return _CODE_SPAN.sub(r"<code>\1</code>", escape(value))


def _entry(code: str, entry: ProblemType) -> str:
    statuses = ", ".join(str(status) for status in entry.status)
    was = "".join(
        f'<p id="{escape(alias)}"><em>Formerly:</em> <code>{escape(alias)}</code></p>'
        for alias in entry.aliases
    )
    return (
        f'<dt id="{escape(code)}"><a href="/problems/{escape(code)}">{escape(code)}</a> '
        f"&mdash; {escape(entry.title)} ({statuses})</dt>"
        f"<dd><p>{_text(entry.meaning)}</p><p><em>What to do:</em> {_text(entry.action)}</p>"
        f"{was}</dd>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _answer(request: Request, html: str) -> Response:
    response = cacheable(
        request, HTMLResponse(html, headers=_SECURITY_HEADERS), cache_control=CACHE_CONTROL
    )
    compress(
        response,
        accept_encoding=request.headers.get("accept-encoding", ""),
        min_bytes=request.app.state.gateway.settings.gzip_min_bytes,
    )
    return response


@router.get("/problems", response_class=HTMLResponse, include_in_schema=False)
async def problem_types(request: Request) -> Response:
    catalogue = load_problem_catalogue()
    entries = "".join(_entry(code, entry) for code, entry in sorted(catalogue.types.items()))
    intro = (
        "<p>Every error answer is <code>application/problem+json</code> (RFC 9457); its "
        "<code>type</code> is <code>/problems/&lt;code&gt;</code> on this origin.</p>"
    )
    return _answer(request, _page("Problem types", f"{intro}<dl>{entries}</dl>"))


@router.get("/problems/{code}", response_class=HTMLResponse, include_in_schema=False)
async def problem_type(code: str, request: Request) -> Response:
    catalogue = load_problem_catalogue()
    entry = catalogue.types.get(code)
    if entry is None and code in catalogue.aliases:  # an old spelling: the code's own page
        return RedirectResponse(f"/problems/{catalogue.aliases[code]}", status_code=301)
    if entry is None:
        raise NotFound(f"no problem type {code!r}: see /problems")
    body = f'<dl>{_entry(code, entry)}</dl><p><a href="/problems">All problem types</a></p>'
    return _answer(request, _page(f"Problem type {code}", body))
