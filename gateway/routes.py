"""The route table (``policy/routes.yaml``): which upstream routes the gateway exposes, and
under which scopes, purpose and resource.

Each entry names one upstream route as ``<METHOD> /<upstream>/<path template>``; the first
path segment is the upstream (identity, orders, consent, transfer), the rest is the
upstream's own path. An entry is one of:

- ``internal: true``: never exposed (ops routes, service-to-service routes); refused 404;
- ``public: true`` with a ``purpose``: anyone may call it;
- ``scopes: [...]`` (any of them) with a ``purpose``: needs a token holding one of them;
- ``purposes: {scope: purpose, ...}``: the caller's scope picks the one purpose (partner
  routes shared by several duties); a caller holding two of them names one in
  ``X-Purpose``.

``resource`` (a catalogue resource) says what the response holds: it is filtered to what
the purpose may see. ``owner_field`` names the response field holding the data subject's
account id, on routes whose answer is one subject's data read by someone other than the
owner (partners, staff): the gateway refuses the answer when that subject restricted the
route's purpose or a category it shows, or when their deleted account left the data under
a legal hold (OB-L-2, OB-L-5), and records the read as an access event of the owner. It
needs a ``resource`` (the owner is read from the answers the gateway filters) and is never
one of the resource's personal fields. ``owner_hidden: true`` removes the owner field from
the answer once checked: a caller who may not learn whose data it is (a partner reading a
privacy waybill) never sees the account id; the upstream records such reads itself. The consent a
route needs follows from its purpose's kind (additional and separate purposes need one).
``during_renewal: open`` marks a route that serves the user's rights (reading the ledger,
notices and transfers, changing consents, filing and following rights requests): it stays
open while a major policy change waits for the user's agreement, since refusing a new
policy never takes those rights away (PIPL arts. 15, 16, 44-47); every other route needing
a token answers 428 then (OB-5-3).

:func:`load_route_table` checks every entry against the catalogue; any problem stops
start-up naming ``routes.yaml:<line>``. A request that matches no entry is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import yaml

from kit.auth import Scope
from kit.catalogue import Catalogue

__all__ = ["Route", "RouteTable", "RouteTableError", "load_route_table", "parse_route_table"]

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The order methods are listed in an ``Allow`` header.
ALLOW_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UPSTREAMS: Final = ("identity", "orders", "consent", "transfer")
CONSENT_KINDS: Final = frozenset({"additional", "separate"})
_ENTRY_KEYS: Final = frozenset(
    {"route", "public", "internal", "scopes", "purpose", "purposes", "resource", "owner_field",
     "owner_hidden", "during_renewal", "note"}
)  # fmt: skip
RENEWAL_STANDINGS: Final = ("open", "refused")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_TEMPLATE = re.compile(r"^/[a-z]+(/(\{[a-z_][a-z0-9_]*\}|[A-Za-z0-9._-]+))*$")


class RouteTableError(ValueError):
    """Every problem of the route table, one per line: ``<file>:<line>: <message>``."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # the gateway path, e.g. /orders/orders/{order_id}
    upstream: str
    line: int
    internal: bool = False
    public: bool = False
    #: scope -> purpose; a plain route maps each of its scopes to its one purpose.
    purpose_by_scope: Mapping[str, str] = field(default_factory=dict)
    purpose: str | None = None  # the purpose when it does not depend on the scope
    resource: str | None = None
    owner_field: str | None = None
    #: the owner field is for the gateway's check only: removed from the answer
    owner_hidden: bool = False
    #: purposes of this route that need the caller's consent (additional / separate)
    consent_purposes: frozenset[str] = frozenset()
    #: a user's right: served while a policy renewal is pending (``during_renewal: open``)
    open_during_renewal: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def purposes(self) -> frozenset[str]:
        found = set(self.purpose_by_scope.values())
        if self.purpose:
            found.add(self.purpose)
        return frozenset(found)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.purpose_by_scope)


def _regex(template: str, *, named: bool = True) -> str:
    parts = _PARAM.split(template)
    return "".join(
        (f"(?P<{part}>[^/]+)" if named else "[^/]+") if index % 2 else re.escape(part)
        for index, part in enumerate(parts)
    )


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(f"^{_regex(template)}$")


def _joined(entries: list[tuple[Route, re.Pattern[str]]]) -> tuple[re.Pattern[str], list[Route]]:
    """The entries' patterns as alternatives of one expression, each its own group (the
    parameters' groups anonymous), and the routes in group order."""
    regex = "|".join(f"({_regex(route.template, named=False)})" for route, _ in entries)
    return re.compile(f"^(?:{regex})$"), [route for route, _ in entries]


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ""


class RouteTable:
    """The entries, matched by method and path; literal segments win over parameters."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        # More literal characters first, so /orders/cart/shares beats /orders/cart/{id}.
        ordered = sorted(routes, key=lambda r: -len(_PARAM.sub("", r.template)))
        self._compiled = [(route, _pattern(route.template)) for route in ordered]
        # The same order, cut by method and first path segment (the upstream's name), so a
        # request tries a handful of patterns, not all of them. An entry whose first
        # segment holds a parameter goes in every list of its method and in the one for
        # paths starting with no listed segment.
        starts = {(r.method, _first_segment(r.template)) for r in routes}
        self._candidates: dict[tuple[str, str], list[tuple[Route, re.Pattern[str]]]] = {
            key: [] for key in starts if "{" not in key[1]
        }
        self._elsewhere: dict[str, list[tuple[Route, re.Pattern[str]]]] = {}
        for route, pattern in self._compiled:
            first = _first_segment(route.template)
            if "{" in first:
                self._elsewhere.setdefault(route.method, []).append((route, pattern))
                lists = [v for (m, _), v in self._candidates.items() if m == route.method]
            else:
                lists = [self._candidates[(route.method, first)]]
            for candidates in lists:
                candidates.append((route, pattern))
        # Each list as one expression, its entries as alternatives in the same order (the
        # first that matches wins, as in the list): one match in C per request instead of
        # a Python loop over a dozen patterns.
        self._joined = {key: _joined(entries) for key, entries in self._candidates.items()}
        self._joined_elsewhere = {m: _joined(entries) for m, entries in self._elsewhere.items()}

    def match(self, method: str, path: str) -> Route | None:
        joined = self._joined.get((method, _first_segment(path)))
        if joined is None:
            joined = self._joined_elsewhere.get(method)
            if joined is None:
                return None
        pattern, routes = joined
        found = pattern.match(path)
        if found is None or found.lastindex is None:
            return None
        return routes[found.lastindex - 1]

    def path_known(self, path: str) -> bool:
        return any(pattern.match(path) for _, pattern in self._compiled)

    def allowed(self, path: str) -> tuple[str, ...]:
        """The methods the path answers to (RFC 9110 10.2.1 ``Allow``): those of its exposed
        entries, HEAD wherever GET is, and OPTIONS; empty for a path no exposed entry has.
        Each method is matched as a request would be, so a literal entry hides a parameter
        one (``/orders/cart/shares`` is not ``/orders/cart/{item_id}``)."""
        methods = {
            method
            for method in METHODS
            if (route := self.match(method, path)) is not None and not route.internal
        }
        if not methods:
            return ()
        if "GET" in methods:
            methods.add("HEAD")
        methods.add("OPTIONS")
        return tuple(method for method in ALLOW_ORDER if method in methods)


def _entry_lines(text: str) -> list[int]:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "routes" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _check_entry(raw: Any, catalogue: Catalogue, problems: list[str]) -> Route | None:  # noqa: PLR0915
    def bad(message: str) -> None:
        problems.append(message)

    if not isinstance(raw, dict):
        bad("an entry is a mapping with 'route'")
        return None
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        bad(f"unknown key(s) {', '.join(unknown)}")
    spec = raw.get("route")
    if not isinstance(spec, str) or len(spec.split()) != 2:
        bad("'route' must be '<METHOD> /<upstream>/<path>'")
        return None
    method, template = spec.split()
    if method not in METHODS:
        bad(f"unknown method {method!r}")
    if not _TEMPLATE.match(template):
        bad(f"bad path template {template!r}")
    upstream = template.split("/")[1]
    if upstream not in UPSTREAMS:
        bad(f"unknown upstream {upstream!r} (one of {', '.join(UPSTREAMS)})")
    if raw.get("internal") is True:
        if "during_renewal" in raw:
            bad("an internal route is never exposed: 'during_renewal' does not apply")
        return Route(method=method, template=template, upstream=upstream, line=0, internal=True)

    public = raw.get("public") is True
    purpose = raw.get("purpose")
    by_scope: dict[str, str] = {}
    known_scopes = {str(scope) for scope in Scope}
    raw_purposes = raw.get("purposes")
    if raw_purposes is not None:
        if purpose is not None or not isinstance(raw_purposes, dict) or not raw_purposes:
            bad("'purposes' maps scopes to purposes, instead of one 'purpose'")
        else:
            by_scope = {str(k): str(v) for k, v in raw_purposes.items()}
        if public:
            bad("a public route serves one 'purpose'")
    else:
        if not isinstance(purpose, str):
            bad("every exposed route serves one catalogue 'purpose'")
            purpose = None
        scopes = raw.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            bad("'scopes' is a list of scope names")
            scopes = []
        if public == bool(scopes):
            bad("a route is either 'public: true' or needs 'scopes'")
        by_scope = {scope: purpose for scope in scopes if purpose}
    for scope in by_scope:
        if scope not in known_scopes:
            bad(f"unknown scope {scope!r}")
    purposes = set(by_scope.values()) | ({purpose} if isinstance(purpose, str) else set())
    consent: set[str] = set()
    for item in sorted(purposes):
        if not catalogue.has_purpose(item):
            bad(f"unknown purpose {item!r}")
        elif catalogue.purpose(item).kind in CONSENT_KINDS:
            consent.add(item)
    if public and consent:
        bad("a public route cannot serve a purpose that needs consent")
    resource = raw.get("resource")
    if resource is not None and (
        not isinstance(resource, str) or resource not in catalogue.resources
    ):
        bad(f"unknown resource {resource!r}")
        resource = None
    owner_field = raw.get("owner_field")
    if owner_field is not None:
        if not isinstance(owner_field, str) or not _FIELD_NAME.match(owner_field):
            bad("'owner_field' is a field name")
            owner_field = None
        elif raw.get("resource") is None:
            bad("'owner_field' needs a 'resource': the owner is read from filtered answers")
        elif isinstance(resource, str) and owner_field in catalogue.fields_for(resource):
            bad(
                f"'owner_field' names the owner's account id, not the personal field "
                f"{owner_field!r} of {resource}"
            )
    owner_hidden = raw.get("owner_hidden", False)
    if not isinstance(owner_hidden, bool):
        bad("'owner_hidden' is true or false")
        owner_hidden = False
    elif owner_hidden and owner_field is None:
        bad("'owner_hidden' needs an 'owner_field'")
    during_renewal = raw.get("during_renewal", "refused")
    if during_renewal not in RENEWAL_STANDINGS:
        bad(f"'during_renewal' is one of {', '.join(RENEWAL_STANDINGS)}")
    elif during_renewal == "open" and public:
        bad("'during_renewal: open' is for routes that need a token (public ones never wait)")
    return Route(
        method=method,
        template=template,
        upstream=upstream,
        line=0,
        public=public,
        purpose_by_scope=by_scope,
        purpose=purpose if isinstance(purpose, str) else None,
        resource=resource,
        owner_field=owner_field,
        owner_hidden=owner_hidden,
        consent_purposes=frozenset(consent),
        open_during_renewal=during_renewal == "open",
    )


def parse_route_table(text: str, catalogue: Catalogue, source: str = "routes.yaml") -> RouteTable:
    try:
        data = yaml.safe_load(text)
        lines = _entry_lines(text)
    except yaml.YAMLError as exc:
        raise RouteTableError(f"{source}:1: YAML error: {exc}") from None
    entries = data.get("routes") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RouteTableError(f"{source}:1: the table is a mapping with a 'routes' list")
    found: list[str] = []
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(entries):
        line = lines[index] if index < len(lines) else 1
        problems: list[str] = []
        route = _check_entry(raw, catalogue, problems)
        if route is not None:
            route = replace(route, line=line)
            if route.key in seen:
                problems.append(f"duplicate route {route.key} (first on line {seen[route.key]})")
            else:
                seen[route.key] = line
                routes.append(route)
        found.extend(f"{source}:{line}: {message}" for message in problems)
    if found:
        raise RouteTableError("\n".join(found))
    return RouteTable(routes)


def load_route_table(path: str | Path, catalogue: Catalogue) -> RouteTable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteTableError(f"{path.name}:1: cannot read the route table: {exc}") from None
    return parse_route_table(text, catalogue, source=path.name)
