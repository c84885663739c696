"""The gateway's one handler: every request outside the gateway's own ops routes.

In order, each step refusing with problem+json (and counted in
``gateway_refusals_total{reason}``):

0. headers: a header value that is not visible ASCII (non-ASCII bytes, control
   characters) is refused (400 ``invalid-header``), one longer than ``max_header_bytes``
   too (431 ``header-too-large``), each naming the header: nothing the gateway forwards
   needs more, and the upstream never sees bytes it might choke on;
1. route: the method and path must match an exposed entry of the route table (404);
2. body size: ``Content-Length`` and the bytes read are capped (413);
3. authentication: non-public routes need a valid bearer token (401);
4. rate limit: a token bucket per subject (or per address for anonymous calls) (429);
5. scope and purpose: a scope the route accepts (403); the one purpose it serves, picked
   by the scope; ``X-Purpose`` naming another is refused (403, OB-3-2); a partner only
   under its registered purposes (403 ``purpose-not-allowed``, OB-3-1);
6. consent: an additional or separate purpose needs the user's consent (403
   ``consent-required``, OB-0-1); basic purposes never ask (OB-0-2);
6b. restriction and legal hold (:mod:`kit.restriction`): a user who restricted the
   purpose, or a data category the route's resource shows that purpose, is refused (403
   ``processing-restricted``, OB-L-2); data of a deleted account under a legal hold is
   storage-only (403 ``storage-only``, OB-L-5): for the user's own calls before the
   upstream, for anyone else's once the response names its owner (nothing is passed on);
7. policy renewal: a user who agreed to an older policy than the newest major version, or
   to none, gets ``X-Policy-Renewal-Required`` and a ``Link``; every route but those
   ``policy/routes.yaml`` marks ``during_renewal: open`` (the policy itself and the user's
   rights) answers 428 until renewed, and 503 with ``Retry-After`` while the consent view
   has not caught up (fail closed, OB-5-3);
8. request fields: a JSON field at any depth (in nested objects and lists too) that is a
   personal field of the route's resource the purpose may not have is refused (422, each
   named by its path, e.g. ``body.items.0.invoice_tax_id``);
9. proxy, with the purpose in ``X-Purpose`` (502 when the upstream is down, 504 slow); a
   problem+json answer's ``instance`` is rewritten to the path the client requested (the
   service only knows its own path);
10. response: personal fields of the route's resource are filtered and masked for the
    purpose (minimum necessary, OB-3-1, OB-2D-7); what is left is recorded as an access
    event in the gateway's outbox (categories only, never values), committed with those
    of concurrent reads (:mod:`gateway.access_events`) before the response leaves.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import Counter
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from gateway.access_events import AccessEventPublisher
from gateway.compression import compress
from gateway.config import Settings
from gateway.consent_view import ConsentViewNotReady
from gateway.limits import RateLimiter
from gateway.methods import not_allowed, own_allow
from gateway.policy_facts import PolicyFacts
from gateway.proxy import UpstreamDown, Upstreams, UpstreamTimeout, forward, request_headers
from gateway.routes import Route, RouteTable
from kit.app import AppContext
from kit.auth import (
    REVOKED_DETAIL,
    InvalidToken,
    Principal,
    TokenVerifier,
    insufficient_scope_challenge,
)
from kit.clock import china_today
from kit.errors import PROBLEM_JSON, DomainError, problem
from kit.field_filter import FieldFilter, FilterResult
from kit.observability import request_id_var
from kit.query_params import passes_any_query
from kit.restriction import Restrictions
from kit.revocation import Revocations

__all__ = ["ACCESS_EVENTS", "REFUSALS", "Gateway", "router"]

logger = logging.getLogger("gateway")

REFUSALS = Counter("gateway_refusals_total", "Requests the gateway refused, by reason", ["reason"])
FILTERED_FIELDS = Counter(
    "gateway_filtered_fields_total",
    "Personal fields the gateway removed from or masked in responses",
    ["resource", "purpose", "action"],
)
ACCESS_EVENTS = Counter(
    "gateway_access_events_total",
    "Responses with personal data: recorded, or left to the upstream (no owner known)",
    ["outcome"],
)

_RECORDED = ACCESS_EVENTS.labels("recorded")
_LEFT_TO_UPSTREAM = ACCESS_EVENTS.labels("left_to_upstream")


@functools.cache
def _filtered_series(resource: str, purpose: str) -> tuple[Counter, Counter]:
    """The removed and masked counters of a route's resource and purpose (both from the
    route table), looked up once: the client's labels() costs microseconds a request."""
    return (
        FILTERED_FIELDS.labels(resource, purpose, "removed"),
        FILTERED_FIELDS.labels(resource, purpose, "masked"),
    )


# RFC 9110 5.5: a field value is visible ASCII with spaces and tabs (obs-text is obsolete).
# Checked as byte deletions (clean when deleting the allowed bytes leaves nothing): a table
# lookup per byte in C instead of the expression engine's loop (1.2 against 2.1 us on a
# bearer token's 700 bytes).
_VISIBLE_BYTES: Final = bytes([0x09, *range(0x20, 0x7F)])
_TOKEN_BYTES: Final = b"!#$%&'*+.^_`|~-" + bytes(
    [*range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x61, 0x7B)]
)
_TOKEN_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# TRACE too, so that the catch-all answers it (404 off the table, 405 on a known path),
# not FastAPI with an Allow of every method.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
RENEWAL_HEADER = "X-Policy-Renewal-Required"
#: Seconds a client waits before asking again while the consent view catches up.
CONSENT_VIEW_RETRY_AFTER_S = 2


@dataclass
class Gateway:
    """What the handler needs, built once at start."""

    settings: Settings
    context: AppContext
    table: RouteTable
    fields: FieldFilter
    upstreams: Upstreams
    limiter: RateLimiter
    access_events: AccessEventPublisher


class Refused(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.code = code or reason.replace("_", "-")
        self.headers = headers or {}
        self.extra = extra


def _refusal(exc: Refused, path: str) -> Response:
    REFUSALS.labels(exc.reason).inc()
    response = problem(exc.status, detail=exc.detail, code=exc.code, instance=path, **exc.extra)
    response.headers.update(exc.headers)
    return response


router = APIRouter()


class Call:
    """One request as the handler reads it: the ASGI scope's parts, its headers decoded
    once (no Starlette ``Request``, ``Headers`` or ``URL`` objects on the hot path)."""

    __slots__ = (
        "app", "client_host", "complete", "headers", "items", "method", "path", "receive", "scope"
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.app: FastAPI = scope["app"]
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        client = scope.get("client")
        self.client_host: str | None = client[0] if client else None
        #: (name, value) as they came, names lower-cased, in order; and by name.
        self.items: list[tuple[str, str]] = []
        self.headers: dict[str, list[str]] = {}
        #: Whether every header was read (a refused one stops the reading).
        self.complete = False

    def header(self, name: str, default: str | None = None) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else default

    def header_list(self, name: str) -> list[str]:
        return self.headers.get(name, [])

    def accept_encoding(self) -> str:
        """``Accept-Encoding``, also when a refused header stopped the reading."""
        if self.complete:
            return self.header("accept-encoding", "") or ""
        for name, value in self.scope["headers"]:
            if name.lower() == b"accept-encoding":
                return str(value.decode("latin-1"))
        return ""


@router.api_route("/{full_path:path}", methods=METHODS, include_in_schema=False)
@passes_any_query
async def gateway_entry(request: Request) -> Response:
    """FastAPI's catch-all: paths outside the upstreams' prefixes (404 or the gateway's
    own routes' ``Allow``). The upstreams' paths come to :func:`serve` straight from the
    app's ASGI entry (:mod:`gateway.entry`)."""
    return await serve(request.scope, request.receive)


async def serve(scope: Scope, receive: Receive) -> Response:
    """The answer to one request: the upstream's, filtered, or the gateway's refusal."""
    call = Call(scope, receive)
    gateway: Gateway = call.app.state.gateway
    path = call.path
    extra_headers: dict[str, str] = {}
    try:
        response = await _handle(call, gateway, path, extra_headers)
    except Refused as exc:
        # Off the table: the gateway's own routes may still know the path (RFC 9110 9).
        allowed = own_allow(call.app.router.routes, scope) if exc.status == 404 else ()
        response = not_allowed(call.method, path, allowed) if allowed else _refusal(exc, path)
    except Answered as answered:
        response = answered.response
    if extra_headers:
        response.headers.update(extra_headers)
    compress(
        response,
        accept_encoding=call.accept_encoding(),
        min_bytes=gateway.settings.gzip_min_bytes,
    )
    if call.method == "HEAD":
        # The GET answer's status and headers (its Content-Length too), without content.
        response.body = b""
    return response


class Answered(Exception):
    """The gateway answers itself, without the upstream (OPTIONS: the path's ``Allow``)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _route_of(table: RouteTable, method: str, path: str) -> Route:
    """The exposed entry serving ``method`` on ``path`` (RFC 9110 section 9.3): HEAD is
    served by the GET entry; OPTIONS on a known path answers 204 with its ``Allow``; any
    other method the path does not take (TRACE included) 405 with the true ``Allow``; a
    path no exposed entry has 404."""
    if "." in path and {".", ".."} & set(path.split("/")):
        raise Refused(404, "route_not_listed", "no such route", code="not-found")
    route = table.match("GET" if method == "HEAD" else method, path)
    if route is not None and not route.internal:
        return route
    allowed = table.allowed(path)
    if not allowed:
        raise Refused(404, "route_not_listed", "no such route", code="not-found")
    allow = ", ".join(allowed)
    if method == "OPTIONS":
        raise Answered(Response(status_code=204, headers={"Allow": allow}))
    raise Refused(
        405,
        "method_not_allowed",
        f"{method} is not allowed here; allowed: {allow}",
        code="method-not-allowed",
        headers={"Allow": allow},
        allow=list(allowed),
    )


def _read_headers(call: Call, limit: int) -> None:
    """Decode the headers once, refusing one the gateway could not forward as it came,
    naming it."""
    items, by_name = call.items, call.headers
    for raw_name, raw_value in call.scope["headers"]:
        name = raw_name.decode("latin-1")
        if not raw_name or raw_name.translate(None, _TOKEN_BYTES):
            _refuse_header(400, "invalid_header", name, "not an HTTP token")
        if len(raw_value) > limit:
            _refuse_header(431, "header_too_large", name, f"longer than {limit} bytes")
        if raw_value.translate(None, _VISIBLE_BYTES):
            _refuse_header(
                400, "invalid_header", name, "only visible ASCII, spaces and tabs are allowed"
            )
        name = name.lower()
        value = raw_value.decode("latin-1")
        items.append((name, value))
        values = by_name.get(name)
        if values is None:
            by_name[name] = [value]
        else:
            values.append(value)
    call.complete = True


def _refuse_header(status: int, reason: str, name: str, message: str) -> None:
    shown = name if _TOKEN_NAME.fullmatch(name.encode("latin-1")) else "(unreadable name)"
    raise Refused(
        status,
        reason,
        f"the header {shown} was refused: {message}",
        header=shown,
        errors=[{"field": f"header.{shown}", "message": message, "type": reason}],
    )


async def _read_body(call: Call, limit: int) -> bytes:
    declared = call.header("content-length")
    if declared is not None and not declared.isdigit():
        _refuse_header(400, "invalid_header", "content-length", "not a number of bytes")
    if declared is not None and int(declared) > limit:
        raise Refused(413, "body_too_large", f"the body exceeds {limit} bytes")
    body = b""
    while True:
        message = await call.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            body += chunk
            if len(body) > limit:
                raise Refused(413, "body_too_large", f"the body exceeds {limit} bytes")
        if not message.get("more_body", False):
            return body


async def _authenticate(call: Call) -> Principal:
    state = call.app.state
    verifier: TokenVerifier = state.token_verifier
    headers = call.header_list("authorization")
    try:
        if len(headers) > 1:
            raise Refused(401, "unauthenticated", "more than one authorization header")
        principal = await verifier.principal(headers[0] if headers else None)
    except DomainError as exc:
        reason = "unauthenticated" if exc.status == 401 else "auth_unavailable"
        raise Refused(exc.status, reason, exc.detail, code=exc.code, headers=exc.headers) from None
    revocations: Revocations = state.revocations
    if revocations.is_revoked(principal.subject):
        revoked = InvalidToken(REVOKED_DETAIL)
        raise Refused(
            401, "unauthenticated", revoked.detail, code=revoked.code, headers=revoked.headers
        )
    return principal


def _purpose(call: Call, route: Route, principal: Principal | None) -> str:
    asked = call.header_list("x-purpose")
    if len(asked) > 1:
        raise Refused(403, "purpose_mismatch", "one request, one purpose", code="purpose-mismatch")
    if principal is None:
        candidates = {route.purpose} if route.purpose else set()
    else:
        held = [scope for scope in route.purpose_by_scope if principal.has(scope)]
        if not held:
            raise Refused(
                403,
                "insufficient_scope",
                "the token holds none of the scopes this route needs",
                code="insufficient-scope",
                headers=insufficient_scope_challenge(route.scopes),
                scopes=sorted(route.scopes),
            )
        candidates = {route.purpose_by_scope[scope] for scope in held}
    if asked:
        if asked[0] not in candidates:
            raise Refused(
                403,
                "purpose_mismatch",
                f"this route serves {', '.join(sorted(candidates))}, not {asked[0]}",
                code="purpose-mismatch",
            )
        purpose = asked[0]
    elif len(candidates) == 1:
        [purpose] = candidates
    else:
        raise Refused(
            403,
            "purpose_ambiguous",
            "the token serves several purposes here: name one in X-Purpose",
            code="purpose-required",
            purposes=sorted(candidates),
        )
    if principal is not None and principal.kind == "partner" and purpose not in principal.purposes:
        raise Refused(
            403,
            "purpose_not_allowed",
            f"this partner is not registered for the purpose {purpose}",
            code="purpose-not-allowed",
            purpose=purpose,
        )
    return purpose


def _check_consent(call: Call, route: Route, principal: Principal, purpose: str) -> None:
    # The caller's own consent: checked for users. Staff and partner routes under a
    # consent purpose rely on the service's per-subject check (transfer: per recipient).
    if principal.kind != "user" or purpose not in route.consent_purposes:
        return
    if not call.app.state.consent_granted(principal.subject, purpose):
        raise Refused(
            403,
            "consent_required",
            f"this function needs your consent to the purpose {purpose}",
            code="consent-required",
            purpose=purpose,
        )


def _check_restricted(
    call: Call, gateway: Gateway, route: Route, subject: str, purpose: str
) -> None:
    restrictions: Restrictions = call.app.state.restrictions
    if subject not in restrictions:  # nothing restricted: no categories to work out
        return
    catalogue = gateway.context.catalogue
    categories: set[str] = set()
    if route.resource is not None:
        categories = {
            catalogue.field_policy(route.resource, name).category
            for name in catalogue.visible_fields(route.resource, purpose)
        }
    refused = restrictions.refusal(subject, purpose, categories)
    if refused is not None:
        raise Refused(
            refused.status,
            refused.code.replace("-", "_"),
            refused.detail,
            code=refused.code,
            **refused.extra,
        )


def _check_caller(
    call: Call, gateway: Gateway, route: Route, principal: Principal, purpose: str
) -> None:
    """The caller's consent, and for a user their own restrictions, before the upstream."""
    _check_consent(call, route, principal, purpose)
    if principal.kind == "user":
        _check_restricted(call, gateway, route, principal.subject, purpose)


def _check_owner(
    call: Call,
    gateway: Gateway,
    route: Route,
    principal: Principal | None,
    *,
    purpose: str,
    parsed: Any,
) -> None:
    """Someone else's call: refused once the response names a restricted or held owner."""
    if principal is not None and principal.kind == "user":
        return  # checked before the upstream
    owner = (
        parsed.get(route.owner_field) if route.owner_field and isinstance(parsed, dict) else None
    )
    if isinstance(owner, str) and owner:
        _check_restricted(call, gateway, route, owner, purpose)


def _filtered(gateway: Gateway, route: Route, purpose: str, parsed: Any) -> FilterResult:
    """The answer as ``purpose`` may see it; with ``owner_hidden``, without the owner field
    once checked: the caller never learns whose data it is (the upstream records the read)."""
    result = gateway.fields.filter(parsed, resource=route.resource or "", purpose=purpose)
    if route.owner_hidden and route.owner_field and isinstance(result.value, dict):
        result.value.pop(route.owner_field, None)
    return result


def _check_ceased(facts: PolicyFacts, purpose: str, today: date) -> None:
    if facts.is_ceased(purpose, today=today):
        raise Refused(
            410,
            "purpose_ceased",
            f"the purpose {purpose} has ceased: nothing is collected for it any more",
            code="purpose-ceased",
            purpose=purpose,
        )


def _newest_major(facts: PolicyFacts, settings: Settings, today: date) -> tuple[int, str] | None:
    """From the privacy center's events; the settings pin one where they are not read."""
    learnt = facts.newest_major(today=today)
    if learnt is not None and learnt.sequence >= settings.policy_major_sequence:
        return learnt.sequence, learnt.version
    if settings.policy_major_sequence > 0:
        version = settings.policy_major_version or str(settings.policy_major_sequence)
        return settings.policy_major_sequence, version
    return None


def _check_renewal(
    call: Call,
    gateway: Gateway,
    principal: Principal,
    route: Route,
    headers: dict[str, str],
    *,
    today: date,
) -> None:
    settings = gateway.settings
    newest = _newest_major(call.app.state.policy_facts, settings, today)
    if principal.kind != "user" or newest is None:
        return
    sequence, version = newest
    try:
        agreed = call.app.state.policy_sequence_agreed(principal.subject)
    except ConsentViewNotReady:
        if route.open_during_renewal:
            return  # a right never waits for the view
        raise Refused(
            503,
            "consent_view_not_ready",
            "the gateway is still reading the privacy center's state: try again shortly",
            code="consent-view-not-ready",
            headers={"Retry-After": str(CONSENT_VIEW_RETRY_AFTER_S)},
        ) from None
    # Never agreed counts as agreed to a version older than any.
    if agreed is not None and agreed >= sequence:
        return
    headers[RENEWAL_HEADER] = version
    headers["Link"] = f'<{settings.policy_page_url}>; rel="privacy-policy"'
    if not route.open_during_renewal:
        raise Refused(
            428,
            "policy_renewal_required",
            f"the privacy policy changed (version {version}): agree to it to continue",
            code="policy-renewal-required",
            version=version,
        )


#: A run of 19 digits: where an integer orjson would read as a float (below -2**63 or
#: above 2**64 - 1) may be. Found by mapping digits to 0 and searching (C speed, ~1 us an
#: order; a regular expression took 40).
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER: Final = b"0" * 19


def _loads(content: bytes) -> tuple[Any, bool]:
    """JSON as :func:`json.loads` reads it, and whether orjson read it (3x faster on an
    order). orjson reads integers past 64 bits as floats: a body with a run of 19 digits
    is left to :func:`json.loads`, as is what orjson refuses and Python's reader takes
    (NaN, 1e400, UTF-16, a BOM, lone surrogates) or refuses (``ValueError``,
    ``RecursionError``)."""
    if content.translate(_DIGITS_TO_ZERO).find(_LONG_NUMBER) < 0:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(content), True
    return json.loads(content), False


def _dumps(value: Any, *, by_orjson: bool) -> bytes:
    """Compact UTF-8 JSON: by orjson (20x faster on an order) what orjson read, the same
    bytes as :func:`json.dumps` with ``ensure_ascii=False`` and no spaces but for the
    spelling of some floats (``1e-7`` for ``1e-07``); what only Python's reader could read,
    by :func:`json.dumps` again (a NaN stays NaN, a long integer keeps every digit)."""
    if by_orjson:
        with contextlib.suppress(orjson.JSONEncodeError):
            return orjson.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _public_instance(content: bytes, path: str) -> bytes:
    """A problem's ``instance`` as the client knows it: the path it requested, not the
    service's own path behind the gateway."""
    try:
        body, by_orjson = _loads(content)
    except ValueError:
        return content
    if not isinstance(body, dict) or not isinstance(body.get("instance"), str):
        return content
    body["instance"] = path
    return _dumps(body, by_orjson=by_orjson)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _check_request_fields(
    gateway: Gateway, route: Route, purpose: str, body: bytes, content_type: str
) -> None:
    if route.resource is None or not body or not _is_json(content_type):
        return
    try:
        parsed, _ = _loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
        raise Refused(
            400,
            "invalid_json",
            "the body is not valid JSON",
            code="malformed-json",
            errors=[{"field": "body", "message": "not valid JSON", "type": "json_invalid"}],
        ) from None
    refused = gateway.fields.refused_inputs(parsed, resource=route.resource, purpose=purpose)
    if refused:
        raise Refused(
            422,
            "personal_field_refused",
            f"not needed for {purpose}: {', '.join(refused)}",
            code="field-not-allowed",
            errors=[
                {"field": f"body.{name}", "message": "not allowed", "type": "extra_forbidden"}
                for name in refused
            ],
        )


async def _handle(
    call: Call, gateway: Gateway, path: str, extra_headers: dict[str, str]
) -> Response:
    _read_headers(call, gateway.settings.max_header_bytes)
    route = _route_of(gateway.table, call.method, path)
    body = await _read_body(call, gateway.settings.max_body_bytes)
    principal = None if route.public else await _authenticate(call)
    client_host = call.client_host
    key = f"sub:{principal.subject}" if principal else f"addr:{client_host}"
    wait = gateway.limiter.take(key)
    if wait:
        raise Refused(429, "rate_limited", "too many requests", headers={"Retry-After": str(wait)})
    purpose = _purpose(call, route, principal)
    today = china_today()
    _check_ceased(call.app.state.policy_facts, purpose, today)
    if principal is not None:
        _check_caller(call, gateway, route, principal, purpose)
        _check_renewal(call, gateway, principal, route, extra_headers, today=today)
    _check_request_fields(gateway, route, purpose, body, call.header("content-type", "") or "")

    scope = call.scope
    upstream_path = path[len(route.upstream) + 1 :]
    raw_path: bytes = scope.get("raw_path") or path.encode()
    raw = raw_path.decode("latin-1")
    if raw.startswith(f"/{route.upstream}/"):
        upstream_path = raw[len(route.upstream) + 1 :]
    headers = request_headers(
        call.items,
        client_host=client_host,
        scheme=scope["scheme"],
        host=call.header("host"),
        request_id=request_id_var.get(),
        purpose=purpose,
    )
    try:
        answer = await forward(
            gateway.upstreams,
            route.upstream,
            method=route.method,  # HEAD: the GET it stands for
            path=upstream_path,
            query=scope.get("query_string", b""),
            headers=headers,
            body=body,
        )
    except UpstreamTimeout:
        raise Refused(
            504, "upstream_timeout", f"{route.upstream} did not answer in time",
            code="upstream-timeout",
        ) from None  # fmt: skip
    except UpstreamDown:
        logger.warning("upstream %s unreachable", route.upstream)
        raise Refused(
            502, "upstream_down", f"{route.upstream} is unreachable", code="upstream-unavailable"
        ) from None

    content = answer.content
    if route.resource is not None and 200 <= answer.status_code < 300 and content:
        content = await _filter_answer(
            gateway,
            call,
            route,
            principal=principal,
            purpose=purpose,
            content=content,
            content_type=answer.content_type,
        )
    elif answer.status_code >= 400 and answer.content_type.lower().startswith(PROBLEM_JSON):
        content = _public_instance(content, path)

    response = Response(content=content, status_code=answer.status_code)
    response.raw_headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers
    )
    return response


async def _filter_answer(
    gateway: Gateway,
    call: Call,
    route: Route,
    *,
    principal: Principal | None,
    purpose: str,
    content: bytes,
    content_type: str,
) -> bytes:
    """The answer's personal fields filtered and masked for ``purpose``, and what is left
    recorded as an access event (before the answer may leave)."""
    assert route.resource is not None
    if not _is_json(content_type):
        raise Refused(502, "unfilterable_response", "the upstream answer cannot be filtered")
    try:
        parsed, by_orjson = _loads(content)
    except ValueError:
        raise Refused(
            502, "unfilterable_response", "the upstream answer cannot be filtered"
        ) from None
    _check_owner(call, gateway, route, principal, purpose=purpose, parsed=parsed)
    result = _filtered(gateway, route, purpose, parsed)
    removed, masked = _filtered_series(route.resource, purpose)
    if result.removed:
        removed.inc(result.removed)
    if result.masked:
        masked.inc(result.masked)
    if result.categories and call.method != "HEAD":  # HEAD: nothing left
        await _record_access(
            gateway,
            route,
            principal,
            purpose=purpose,
            value=result.value,
            categories=result.categories,
        )
    return _dumps(result.value, by_orjson=by_orjson)


async def _record_access(
    gateway: Gateway,
    route: Route,
    principal: Principal | None,
    *,
    purpose: str,
    value: Any,
    categories: tuple[str, ...],
) -> None:
    owner: str | None = None
    if principal is not None and principal.kind == "user":
        owner = principal.subject
    elif route.owner_field and isinstance(value, dict):
        candidate = value.get(route.owner_field)
        owner = candidate if isinstance(candidate, str) and candidate else None
    if owner is None or route.resource is None:
        # No owner in sight (a partner's waybill carries none): the upstream records
        # its own read with the data subject (orders does, for partner reads).
        _LEFT_TO_UPSTREAM.inc()
        return
    # Straight to Kafka, or to the outbox (shared commits) when Kafka does not acknowledge
    # in time: either way this response waits until its own event is safe.
    event = gateway.context.events.processing_event(
        subject=owner,
        actor=principal.subject if principal else "anonymous",
        action="read",
        purpose=purpose,
        resource=route.resource,
        categories=categories,
    )
    await gateway.access_events.record(event)
    _RECORDED.inc()
