"""Mass assignment (OWASP API3 / API6; OB-3-1): no request may set a field its caller may
not set: status, amounts, owner, assignment, verification flags, ids, timestamps.

It holds by construction: every writable route of every service (POST, PUT, PATCH with
a JSON body, found in the services' own OpenAPI) takes a schema that forbids unknown
members, at every level (``additionalProperties: false``). The tests prove both halves:

- the construction, read from each service's OpenAPI (a new writable route joins by
  itself);
- the behaviour: each writable route, called by a principal allowed to call it, refuses
  with 422 every field its answer shows but its request does not take, plus the usual
  privileged names, and names each one (``extra_forbidden``);
- end to end through the gateway: a valid order, cart line or registration with a
  privileged field added is refused whole, and nothing is created.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kit.auth import PARTNER_SCOPES, STAFF_ROLE_SCOPES, STAFF_SCOPES
from kit.ids import new_id
from kit.settings import REPO_ROOT
from kit.testing import new_subject
from tests.gateway.conftest import DETAIL, NAME, PHONE
from tests.security.conftest import SERVICES, Suite

pytestmark = pytest.mark.security

WRITES = ("post", "put", "patch")
#: Names no client may set, wherever they would mean something.
PRIVILEGED = (
    "id",
    "status",
    "owner",
    "owner_id",
    "account_id",
    "subject",
    "amount",
    "amount_payable",
    "total",
    "price_at_adding",
    "discount",
    "logistics_partner_id",
    "customs_broker_id",
    "assigned_to",
    "verified",
    "verification_level",
    "guardian_consent",
    "minor",
    "roles",
    "scopes",
    "kind",
    "created_at",
    "client_secret",
)
#: Form-encoded OAuth2 token requests: RFC 6749 3.2 says unknown parameters are ignored;
#: the grant takes only what it names.
FORM_ROUTES = {("identity", "post", "/oauth2/token")}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def open_objects(spec: dict[str, Any], schema: dict[str, Any], path: str = "body") -> list[str]:
    """Paths of object schemas with named members that accept unknown members too."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(node: dict[str, Any], where: str) -> None:
        node = _resolve(spec, node)
        if id(node) in seen:
            return
        seen.add(id(node))
        for key in ("anyOf", "oneOf", "allOf"):
            for option in node.get(key, []):
                walk(option, where)
        if "properties" in node:
            if node.get("additionalProperties") is not False:
                found.append(where)
            for name, member in node["properties"].items():
                walk(member, f"{where}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{where}[]")

    walk(schema, path)
    return found


def writable_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method in WRITES and "requestBody" in operation
    ]


def members(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(spec, schema)
    names = set(schema.get("properties", {}))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            names |= members(spec, option)
    return names


def answer_members(spec: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for code, response in operation.get("responses", {}).items():
        if code.startswith("2"):
            for media in response.get("content", {}).values():
                names |= members(spec, media.get("schema", {}))
    return names


def variants(
    spec: dict[str, Any], schema: dict[str, Any]
) -> list[tuple[dict[str, str], dict[str, Any], str]]:
    """(tag, schema, error path prefix) for each variant of a tagged union (each judged on
    its own); a plain schema is its one variant."""
    resolved = _resolve(spec, schema)
    discriminator = resolved.get("discriminator")
    if not discriminator:
        return [({}, resolved, "body.")]
    name = discriminator["propertyName"]
    return [
        ({name: tag}, {"$ref": ref}, f"body.{tag}.")
        for tag, ref in discriminator["mapping"].items()
    ]


def route_scopes() -> dict[tuple[str, str, str], list[str]]:
    """(service, method, path) -> the scopes the route table asks for it."""
    entries = yaml.safe_load((REPO_ROOT / "policy" / "routes.yaml").read_text("utf-8"))["routes"]
    found: dict[tuple[str, str, str], list[str]] = {}
    for entry in entries:
        method, template = entry["route"].split()
        service, _, path = template[1:].partition("/")
        found[(service, method.lower(), "/" + path)] = list(
            entry.get("scopes") or entry.get("purposes") or []
        )
    return found


async def specs(suite: Suite) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in SERVICES:
        answer = await suite.clients[name].get("/openapi.json")
        assert answer.status_code == 200
        found[name] = answer.json()
    return found


@pytest.mark.obligation("OB-3-1")
async def test_every_writable_schema_forbids_unknown_members(suite: Suite) -> None:
    checked = 0
    for name, spec in (await specs(suite)).items():
        for method, path, operation in writable_operations(spec):
            for media_type, media in operation["requestBody"]["content"].items():
                if (name, method, path) in FORM_ROUTES:
                    assert media_type == "application/x-www-form-urlencoded"
                    continue
                assert media_type == "application/json", f"{name} {method} {path}"
                holes = open_objects(spec, media["schema"])
                assert not holes, f"{name} {method.upper()} {path} accepts unknown members: {holes}"
                checked += 1
    print(f"\nmass assignment: {checked} writable JSON schemas closed")
    assert checked >= 30  # every service's writable routes were found


def caller(suite: Suite, scopes: list[str]) -> dict[str, str]:
    """A principal the route lets through, so the body is what gets judged."""
    if set(scopes) and set(scopes) <= STAFF_SCOPES:
        role = next(role for role, held in STAFF_ROLE_SCOPES.items() if held & set(scopes))
        return suite.staff(new_subject("stf"), role)
    if set(scopes) and set(scopes) <= PARTNER_SCOPES:
        return suite.partner(new_subject("ptn"), "partner:logistics", ["logistics.delivery"])
    return suite.user(new_subject())


@pytest.mark.obligation("OB-3-1")
async def test_every_writable_route_refuses_fields_its_caller_may_not_set(suite: Suite) -> None:
    table = route_scopes()
    refused = 0
    for name, spec in (await specs(suite)).items():
        for method, path, operation in writable_operations(spec):
            if (name, method, path) in FORM_ROUTES:
                continue
            media = operation["requestBody"]["content"]["application/json"]
            headers = caller(suite, table.get((name, method, path), []))
            url = path.replace("{", "").replace("}", "")  # any id: the body is judged first
            for tag, variant, prefix in variants(spec, media["schema"]):
                allowed = members(spec, variant) | set(tag)
                injected = sorted((answer_members(spec, operation) | set(PRIVILEGED)) - allowed)
                assert injected
                answer = await suite.clients[name].request(
                    method,
                    url,
                    json={**dict.fromkeys(injected, "x"), **tag},
                    headers={**headers, "Idempotency-Key": new_id("idem")},
                )
                where = f"{name} {method.upper()} {path} {tag}"
                assert answer.status_code == 422, f"{where}: {answer.status_code} {answer.text}"
                errors = answer.json()["errors"]
                forbidden = {e["field"] for e in errors if e["type"] == "extra_forbidden"}
                assert forbidden == {f"{prefix}{field}" for field in injected}, where
                refused += len(injected)
    print(f"\nmass assignment: {refused} privileged fields refused")
    assert refused > 300


ORDER: dict[str, Any] = {
    "consignee_name": NAME,
    "consignee_phone": PHONE,
    "address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": DETAIL},
}


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "completed"},
        {"amount_payable": "0.01"},
        {"account_id": "acc_victim"},
        {"logistics_partner_id": "ptn_attacker"},
        {"address": {**ORDER["address"], "verified": True}},
        {"items": [{"goods_id": "GOODS", "quantity": 1, "price": "0.01"}]},
    ],
    ids=["status", "amount", "owner", "assignment", "nested-flag", "line-price"],
)
@pytest.mark.obligation("OB-3-1")
async def test_an_order_with_a_privileged_field_is_refused_whole(
    suite: Suite, extra: dict[str, Any]
) -> None:
    client = suite.client
    goods = await client.post(
        "/orders/admin/goods",
        json={"name": "Tea cup", "price": "19.90"},
        headers=suite.staff(new_subject("stf"), "catalogue_manager"),
    )
    assert goods.status_code == 201, goods.text
    goods_id = goods.json()["goods_id"]
    user = suite.user(new_subject())
    body = {**ORDER, "items": [{"goods_id": goods_id, "quantity": 1}]}
    valid = await client.post(
        "/orders/orders", json=body, headers={**user, "Idempotency-Key": new_id("idem")}
    )
    assert valid.status_code == 201, valid.text  # the control: the body alone is fine
    hostile = json_replace({**body, **extra}, "GOODS", goods_id)
    answer = await client.post(
        "/orders/orders", json=hostile, headers={**user, "Idempotency-Key": new_id("idem")}
    )
    assert answer.status_code == 422, answer.text
    assert any(e["type"] == "extra_forbidden" for e in answer.json()["errors"])
    mine = await client.get("/orders/orders", headers=user)
    assert len(mine.json()["items"]) == 1  # only the valid one


def json_replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {key: json_replace(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [json_replace(item, old, new) for item in value]
    return new if value == old else value


@pytest.mark.obligation("OB-3-1")
async def test_a_registration_cannot_make_itself_staff_or_verified(suite: Suite) -> None:
    answer = await suite.client.post(
        "/identity/accounts",
        json={
            "phone": "13900005678",
            "password": "correct horse battery",
            "kind": "staff",
            "roles": ["privacy_officer"],
            "verified": True,
        },
    )
    assert answer.status_code == 422, answer.text
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"body.kind", "body.roles", "body.verified"}
    login = await suite.client.post(
        "/identity/login", json={"phone": "13900005678", "password": "correct horse battery"}
    )
    assert login.status_code == 401  # no account was made
