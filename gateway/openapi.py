"""The gateway's own OpenAPI: every exposed route as a client sees it (issue 18 item 2).

Built, never written by hand, from the route table (``policy/routes.yaml``), the catalogue
and each service's own OpenAPI (the service apps' documents, made from their code in this
process: the gateway ships with the services' code, so the two cannot drift):

- each exposed entry's operation appears under its gateway path (``/orders/orders/{id}``),
  its ``operationId`` prefixed with the upstream, tagged with it; internal entries and
  routes the table does not list are absent;
- ``security``: none for a public route; else the bearer token with the scopes the route
  accepts; ``x-scopes``, ``x-purpose`` (scope -> purpose), ``x-consent-required`` and
  ``x-open-during-renewal`` say what the table says, and the description spells it out;
  ``X-Purpose`` is a header parameter naming one of the route's purposes;
- the success answers of a route with a ``resource`` are the schema after the gateway's
  field filter for that purpose (:class:`kit.field_filter.FieldFilter`): personal fields
  the purpose may not see are absent, masked ones are documented as masked (a string, or
  null when redacted) with ``x-masked``; a route serving several purposes (partner duties)
  answers one of the per-purpose shapes (``anyOf``, each naming its ``x-purpose``);
  request bodies lose the personal fields no purpose of the route may send (refused 422
  ``field-not-allowed``);
- the problem+json errors the gateway itself answers (400, 401, 403 ``insufficient-scope``
  / ``consent-required`` / ``purpose-*``, 410 ``purpose-ceased``, 413, 422, 428, 429, 431,
  502, 503, 504) are added to the service's own, each naming its codes (``x-problem-codes``,
  resolving to ``/problems/<code>``).

:func:`gateway_openapi` builds the document once per process (the services' documents
are cached; building them takes about a second), on the first ask, in a worker thread so
that the requests the gateway serves meanwhile are not held (a few seconds of CPU).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from gateway.compression import compress
from gateway.routes import UPSTREAMS, Route, RouteTable
from kit.auth import BEARER_SCHEME
from kit.catalogue import Catalogue, MaskingRule
from kit.errors import PROBLEM_JSON, PROBLEM_SCHEMA, PROBLEM_TYPE_BASE
from kit.field_filter import FieldFilter
from kit.http_cache import cacheable

__all__ = [
    "OpenApiProblem",
    "build_gateway_openapi",
    "gateway_openapi",
    "router",
    "service_openapis",
]

_REF_PREFIX: Final = "#/components/schemas/"
_OPERATION_KEYS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SCHEMA_LISTS: Final = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES: Final = ("items", "additionalProperties", "not")
_PURPOSE_HEADER: Final = "x-purpose"
PROBLEM_COMPONENT: Final = "Problem"


class OpenApiProblem(ValueError):
    """An exposed route the service documents no operation for."""


@functools.cache
def service_openapis() -> dict[str, dict[str, Any]]:
    """Each upstream's own OpenAPI, from its app's code (no settings read, nothing run)."""
    documents: dict[str, dict[str, Any]] = {}
    for name in UPSTREAMS:
        main = importlib.import_module(f"services.{name}.main")
        config = importlib.import_module(f"services.{name}.config")
        app = main.create_app(config.Settings.model_construct())
        documents[name] = app.openapi()
    return documents


def _component_name(upstream: str, name: str) -> str:
    return f"{upstream.capitalize()}{name}"


def _renamed_refs(node: Any, upstream: str) -> Any:
    """``node`` with every schema ``$ref`` pointing at the upstream's prefixed component."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                out[key] = _REF_PREFIX + _component_name(upstream, value[len(_REF_PREFIX) :])
            else:
                out[key] = _renamed_refs(value, upstream)
        return out
    if isinstance(node, list):
        return [_renamed_refs(item, upstream) for item in node]
    return node


def _inline(schema: Any, components: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with its component references replaced by copies of what they name (a
    reference back into itself stays a reference)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            name = ref[len(_REF_PREFIX) :]
            if name in seen or name not in components:
                return dict(schema)
            target = _inline(components[name], components, (*seen, name))
            # No title: a client generator names an inline object by where it is, so the
            # same model inlined twice (filtered differently) makes two classes, not a clash.
            target = {k: v for k, v in target.items() if k != "title"}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return {**target, **rest} if rest else target
        return {key: _inline(value, components, seen) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(item, components, seen) for item in schema]
    return schema


def _types(schema: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    kind = schema.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(str(k) for k in kind)
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            if isinstance(option, dict):
                found |= _types(option)
    if "enum" in schema and not found:
        found.add("string")
    if "const" in schema and schema["const"] is None:
        found.add("null")
    return found


def _rule_text(rule: MaskingRule) -> str:
    if rule.strategy == "redact":
        return "redacted: always null"
    kept = f"the first {rule.keep_start} and last {rule.keep_end} characters kept"
    if rule.strategy == "email":
        return f"masked as an address: the local part with {kept}, the domain shown"
    return f"masked: {kept}, every other one shown as '{rule.mask_char}'"


def _masked(original: Mapping[str, Any], rule: MaskingRule, purpose: str) -> dict[str, Any]:
    """What a masked field looks like (:func:`kit.masking.mask_value`): scalars become
    their masked text, lists are masked item by item, objects and redacted values null."""
    described = {
        "description": f"Personal data, for the purpose {purpose} {_rule_text(rule)}.",
        "x-masked": {"purpose": purpose, **rule.model_dump(exclude={"id"})},
    }
    if rule.strategy == "redact":
        return {"type": "null", **described}
    kinds = _types(original)
    shapes: list[dict[str, Any]] = []
    if kinds & {"string", "integer", "number", "boolean"} or not kinds:
        shapes.append({"type": "string"})
    if "array" in kinds:
        shapes.append({"type": "array", "items": {"type": ["string", "null"]}})
    if kinds & {"null", "object"}:
        shapes.append({"type": "null"})
    if len(shapes) == 1:
        return {**shapes[0], **described}
    return {"anyOf": shapes, **described}


@dataclass
class _Filter:
    """One resource seen under one purpose: fields shown, masked, absent."""

    personal: frozenset[str]
    visible: Mapping[str, MaskingRule]
    purpose: str
    removed: set[str] = field(default_factory=set)

    def response(self, schema: Any) -> Any:
        """The answer's schema as the gateway lets it through (the filter's walk: every
        object at any depth, a personal field's own value never walked into)."""
        if isinstance(schema, list):
            return [self.response(item) for item in schema]
        if not isinstance(schema, dict):
            return schema
        out = dict(schema)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            shown: dict[str, Any] = {}
            for name, value in properties.items():
                if name not in self.personal:
                    shown[name] = self.response(value)
                elif (rule := self.visible.get(name)) is None:
                    self.removed.add(name)
                elif rule.strategy == "none":
                    shown[name] = value
                else:
                    shown[name] = _masked(value, rule, self.purpose)
            out["properties"] = shown
            if "required" in schema:
                out["required"] = [name for name in schema["required"] if name in shown]
        for key in _SCHEMA_LISTS:
            if isinstance(schema.get(key), list):
                out[key] = [self.response(item) for item in schema[key]]
        for key in _SCHEMA_ONES:
            if isinstance(schema.get(key), dict):
                out[key] = self.response(schema[key])
        return out


def _request_without(schema: Any, refused: frozenset[str]) -> Any:
    """A request body's schema without the personal fields the gateway refuses (at every
    depth, as :meth:`FieldFilter.refused_inputs` looks)."""
    if isinstance(schema, list):
        return [_request_without(item, refused) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _request_without(value, refused) for key, value in schema.items()}
    properties = out.get("properties")
    if isinstance(properties, dict) and refused & set(properties):
        out["properties"] = {k: v for k, v in properties.items() if k not in refused}
        if "required" in out:
            out["required"] = [name for name in out["required"] if name not in refused]
    return out


def _problem_response(
    description: str, codes: Iterable[str], headers: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    listed = sorted(set(codes))
    links = ", ".join(f"[`{code}`]({PROBLEM_TYPE_BASE}{code})" for code in listed)
    response: dict[str, Any] = {
        "description": f"{description} ({links})" if listed else description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        "x-problem-codes": listed,
    }
    if headers:
        response["headers"] = dict(headers)
    return response


_RETRY_AFTER: Final = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
}
_CHALLENGE: Final = {
    "WWW-Authenticate": {
        "description": "RFC 6750 challenge: `invalid_token` (401) or `insufficient_scope` (403)",
        "schema": {"type": "string"},
    }
}


def _without_property(schema: Any, name: str) -> Any:
    """The answer's top-level object schema without ``name`` (an owner field the gateway
    removes, ``owner_hidden``)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return schema
    out = dict(schema)
    out["properties"] = {k: v for k, v in schema["properties"].items() if k != name}
    if "required" in schema:
        out["required"] = [item for item in schema["required"] if item != name]
    return out


def _gateway_errors(
    route: Route, catalogue: Catalogue, has_body: bool
) -> dict[str, dict[str, Any]]:
    """The problems the gateway itself may answer for ``route`` (:mod:`gateway.handler`)."""
    errors: dict[str, dict[str, Any]] = {
        "400": _problem_response(
            "The gateway refused a header (or a body that is not JSON)",
            ["invalid-header", *(["malformed-json"] if has_body and route.resource else [])],
        ),
        "429": _problem_response(
            "Too many requests from this caller", ["rate-limited"], _RETRY_AFTER
        ),
        "431": _problem_response(
            "A request header is over the gateway's limit", ["header-too-large"]
        ),
        "502": _problem_response(
            "The service behind the gateway is unreachable, or its answer cannot be filtered",
            ["upstream-unavailable", "unfilterable-response"],
        ),
        "504": _problem_response(
            "The service behind the gateway did not answer in time", ["upstream-timeout"]
        ),
    }
    forbidden = ["purpose-mismatch"]
    if not route.public:
        errors["401"] = _problem_response(
            "No access token, or one not valid (expired, revoked, its account closed)",
            ["unauthenticated", "invalid-token"],
            _CHALLENGE,
        )
        forbidden += ["insufficient-scope", "purpose-not-allowed"]
        if len(route.purposes) > 1:
            forbidden.append("purpose-required")
        if route.consent_purposes:
            forbidden.append("consent-required")
        if not route.open_during_renewal:
            errors["428"] = _problem_response(
                "The privacy policy changed: the user agrees to the new version first "
                "(`X-Policy-Renewal-Required` names it)",
                ["policy-renewal-required"],
            )
            errors["503"] = _problem_response(
                "The gateway is still reading the users' consents: try again shortly",
                ["consent-view-not-ready"],
                _RETRY_AFTER,
            )
    if route.owner_field is not None:
        forbidden += ["processing-restricted", "storage-only"]
    errors["403"] = _problem_response(
        "The caller may not use this route under the purpose asked", forbidden, _CHALLENGE
    )
    if any(catalogue.purpose(purpose).kind != "legal" for purpose in route.purposes):
        errors["410"] = _problem_response(
            "The purpose this route serves has ceased: nothing is collected for it any more",
            ["purpose-ceased"],
        )
    if has_body:
        errors["413"] = _problem_response(
            "The request body is over the gateway's limit", ["body-too-large"]
        )
        if route.resource is not None:
            errors["422"] = _problem_response(
                "A field is invalid, or a personal field this purpose may not send is present",
                ["validation-error", "field-not-allowed"],
            )
    return errors


def _merge_error(existing: dict[str, Any] | None, added: dict[str, Any]) -> dict[str, Any]:
    if existing is None:
        return added
    merged = dict(existing)
    codes = sorted(set(existing.get("x-problem-codes", [])) | set(added["x-problem-codes"]))
    merged["description"] = (
        f"{existing.get('description', '')}; at the gateway: {added['description']}"
    )
    merged["x-problem-codes"] = codes
    merged["content"] = {**existing.get("content", {}), **added["content"]}
    headers = {**added.get("headers", {}), **existing.get("headers", {})}
    if headers:
        merged["headers"] = headers
    return merged


def _access_text(route: Route, catalogue: Catalogue) -> str:
    if route.public:
        who = f"Public (no token), under the purpose `{route.purpose}`."
    elif route.purpose is not None:
        scopes = ", ".join(f"`{scope}`" for scope in sorted(route.scopes))
        who = f"A token with one of the scopes {scopes}, under the purpose `{route.purpose}`."
    else:
        pairs = ", ".join(f"`{s}` → `{p}`" for s, p in sorted(route.purpose_by_scope.items()))
        who = (
            f"A token whose scope picks the purpose: {pairs} (name one in `X-Purpose` when "
            "holding several)."
        )
    lines = [who]
    if route.consent_purposes:
        needed = ", ".join(f"`{p}`" for p in sorted(route.consent_purposes))
        lines.append(f"Needs the user's consent to {needed} (403 `consent-required` otherwise).")
    if route.resource is not None:
        lines.append(
            f"The answer is the resource `{route.resource}` filtered for the purpose: personal "
            "fields it may not see are absent, masked ones documented as masked."
        )
    if not route.public:
        lines.append(
            "Stays open while a new privacy policy waits for the user's agreement (a right)."
            if route.open_during_renewal
            else "Answers 428 while a new privacy policy waits for the user's agreement."
        )
    return "\n\n".join(lines)


def _operation(
    route: Route,
    source: dict[str, Any],
    upstream_doc: dict[str, Any],
    catalogue: Catalogue,
    fields: FieldFilter,
) -> dict[str, Any]:
    upstream = route.upstream
    components = upstream_doc.get("components", {}).get("schemas", {})
    operation: dict[str, Any] = _renamed_refs(copy.deepcopy(source), upstream)
    renamed_components = {
        _component_name(upstream, name): _renamed_refs(schema, upstream)
        for name, schema in components.items()
    }
    if "operationId" in operation:
        operation["operationId"] = f"{upstream}_{operation['operationId']}"
    operation["tags"] = [upstream]
    own = operation.get("description", "")
    operation["description"] = "\n\n".join(
        part for part in (own, _access_text(route, catalogue)) if part
    )
    if route.public:
        operation["security"] = []
    else:
        operation["security"] = [{BEARER_SCHEME: sorted(route.scopes)}]
    operation["x-scopes"] = sorted(route.scopes)
    operation["x-purpose"] = (
        {"public": route.purpose} if route.public else dict(sorted(route.purpose_by_scope.items()))
    )
    operation["x-consent-required"] = sorted(route.consent_purposes)
    operation["x-open-during-renewal"] = route.open_during_renewal
    if route.resource is not None:
        operation["x-resource"] = route.resource
    parameters = [
        p
        for p in operation.get("parameters", [])
        if not (p.get("in") == "header" and str(p.get("name", "")).lower() == _PURPOSE_HEADER)
    ]
    parameters.append(
        {
            "name": "X-Purpose",
            "in": "header",
            "required": False,
            "description": "The one purpose this request is served under (needed only when "
            "the token's scopes serve several here)",
            "schema": {"type": "string", "enum": sorted(route.purposes)},
        }
    )
    operation["parameters"] = parameters
    purposes = sorted(route.purposes)
    resource = route.resource
    body = operation.get("requestBody")
    if resource is not None and isinstance(body, dict):
        personal = frozenset(catalogue.fields_for(resource))
        refused = frozenset.intersection(
            *(personal - frozenset(fields.visible(resource, p)) for p in purposes)
        )
        for media in body.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _request_without(
                    _inline(media["schema"], renamed_components), refused
                )
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if resource is not None:
        personal = frozenset(catalogue.fields_for(resource))
        for status, response in responses.items():
            if not (status.startswith("2") and isinstance(response, dict)):
                continue
            for media in response.get("content", {}).values():
                if "schema" not in media:
                    continue
                full = _inline(media["schema"], renamed_components)
                if route.owner_hidden and route.owner_field:
                    full = _without_property(full, route.owner_field)
                shapes = [
                    _Filter(personal, fields.visible(resource, p), p).response(full)
                    for p in purposes
                ]
                if len(shapes) == 1 or all(shape == shapes[0] for shape in shapes):
                    media["schema"] = shapes[0]
                else:
                    media["schema"] = {
                        "anyOf": [
                            {**shape, "description": f"As seen for the purpose {p}", "x-purpose": p}
                            for p, shape in zip(purposes, shapes, strict=True)
                        ]
                    }
    for status, added in _gateway_errors(route, catalogue, isinstance(body, dict)).items():
        responses[status] = _merge_error(responses.get(status), added)
    return operation


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                found.add(ref[len(_REF_PREFIX) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def build_gateway_openapi(
    table: RouteTable,
    catalogue: Catalogue,
    services: Mapping[str, dict[str, Any]],
    *,
    title: str = "Gateway",
    version: str = "0.1.0",
    description: str = "",
) -> dict[str, Any]:
    """The document; :class:`OpenApiProblem` lists every exposed route no service documents."""
    fields = FieldFilter(catalogue)
    paths: dict[str, dict[str, Any]] = {}
    all_components: dict[str, Any] = {}
    missing: list[str] = []
    for route in table.routes:
        if route.internal:
            continue
        upstream_doc = services[route.upstream]
        upstream_path = route.template[len(route.upstream) + 1 :]
        source = upstream_doc.get("paths", {}).get(upstream_path, {}).get(route.method.lower())
        if source is None:
            missing.append(
                f"routes.yaml:{route.line}: {route.key}: {route.upstream} documents no "
                f"{route.method} {upstream_path}"
            )
            continue
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(
            route, source, upstream_doc, catalogue, fields
        )
        for name, schema in upstream_doc.get("components", {}).get("schemas", {}).items():
            all_components[_component_name(route.upstream, name)] = _renamed_refs(
                schema, route.upstream
            )
    if missing:
        raise OpenApiProblem("\n".join(missing))
    # Every problem+json answer names one component (a client generator makes one class).
    for methods in paths.values():
        for operation in methods.values():
            for response in operation.get("responses", {}).values():
                media = response.get("content", {}).get(PROBLEM_JSON)
                if media is not None and media.get("schema") == PROBLEM_SCHEMA:
                    media["schema"] = {"$ref": _REF_PREFIX + PROBLEM_COMPONENT}
    # Only the components the exposed operations reach.
    wanted: set[str] = set()
    pending = _references(paths)
    while pending:
        name = pending.pop()
        if name in wanted or name not in all_components:
            continue
        wanted.add(name)
        pending |= _references(all_components[name])
    scheme = next(
        (
            doc["components"]["securitySchemes"][BEARER_SCHEME]
            for doc in services.values()
            if BEARER_SCHEME in doc.get("components", {}).get("securitySchemes", {})
        ),
        {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    )
    ordered_paths = {
        path: {method: methods[method] for method in _OPERATION_KEYS if method in methods}
        for path, methods in sorted(paths.items())
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": ordered_paths,
        "components": {
            "schemas": {
                PROBLEM_COMPONENT: PROBLEM_SCHEMA,
                **{name: all_components[name] for name in sorted(wanted)},
            },
            "securitySchemes": {BEARER_SCHEME: scheme},
        },
        "tags": [{"name": name, "description": f"routes of {name}"} for name in UPSTREAMS],
    }


_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def gateway_openapi(
    table: RouteTable, catalogue: Catalogue, *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The document for the running gateway (the services' documents built once)."""
    document = build_gateway_openapi(
        table, catalogue, service_openapis(), title=title, version=version, description=description
    )
    assert all(_SAFE_NAME.match(name) for name in document["components"]["schemas"])
    return document


#: An hour: the document changes only with a release; caches revalidate after it.
CACHE_CONTROL: Final = "public, max-age=3600"

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
async def public_openapi(request: Request) -> Response:
    """The document on the public origin too: it lists only what any client may call
    (never an internal route), and clients and their generators read it there."""
    content: bytes | None = getattr(request.app.state, "openapi_bytes", None)
    if content is None:
        # Building it takes seconds of CPU: in a worker thread, so that the requests this
        # worker is serving meanwhile are not held for that long; serialised once.
        document = await asyncio.to_thread(request.app.openapi)
        content = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        request.app.state.openapi_bytes = content
    response = cacheable(
        request,
        Response(content, media_type="application/json"),
        cache_control=CACHE_CONTROL,
    )
    compress(
        response,
        accept_encoding=request.headers.get("accept-encoding", ""),
        min_bytes=request.app.state.gateway.settings.gzip_min_bytes,
    )
    return response
