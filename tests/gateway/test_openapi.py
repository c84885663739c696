"""The gateway's own OpenAPI (issue 18 item 2): every exposed route as a client sees it,
built from the route table, the catalogue and each service's own OpenAPI.

The document read here is the one the running gateway serves (public port and operations
port alike), or, for the properties that hold of every route, the one it builds from the
repository's route table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from gateway.openapi import build_gateway_openapi, service_openapis
from gateway.routes import load_route_table
from kit.catalogue import Catalogue, load_catalogue
from kit.settings import REPO_ROOT
from kit.testing import on_loopback_port
from tests.gateway.conftest import GatewayUnderTest, fake_orders_app, running_gateway


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(REPO_ROOT / "policy" / "catalogue.yaml")


@pytest.fixture(scope="module")
def document(catalogue: Catalogue) -> dict[str, Any]:
    table = load_route_table(REPO_ROOT / "policy" / "routes.yaml", catalogue)
    return build_gateway_openapi(table, catalogue, service_openapis())


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    async with running_gateway(tmp_path, {"orders": fake_orders_app()}) as running:
        yield running


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(schema.get("properties", {}))


async def test_the_gateway_serves_its_openapi_on_both_ports(gateway: GatewayUnderTest) -> None:
    async with (
        on_loopback_port(gateway.app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as public,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.app.state.ops_port}") as ops,
    ):
        answer = await public.get("/openapi.json", timeout=120)  # built on this first ask
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert "etag" in answer.headers
        again = await public.get("/openapi.json", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304
        served = answer.json()
        assert (await ops.get("/openapi.json")).json() == served
        assert "swagger" in (await ops.get("/docs")).text.lower()
    validate(served)
    operations = _operations(served)
    # A client's routes, under the gateway's paths; never an internal one.
    assert "POST /identity/accounts" in operations
    assert "GET /orders/orders/{order_id}" in operations
    assert "GET /identity/readyz" not in operations
    assert not any(path.endswith(("/healthz", "/metrics")) for path in served["paths"])


def test_every_exposed_route_and_no_internal_one(
    document: dict[str, Any], catalogue: Catalogue
) -> None:
    validate(document)
    table = load_route_table(REPO_ROOT / "policy" / "routes.yaml", catalogue)
    exposed = {route.key for route in table.routes if not route.internal}
    assert set(_operations(document)) == exposed


def test_scopes_purpose_and_consent_are_those_of_the_route_table(
    document: dict[str, Any],
) -> None:
    operations = _operations(document)
    register = operations["POST /identity/accounts"]
    assert register["security"] == []
    assert register["x-purpose"] == {"public": "account"}
    read = operations["GET /orders/orders/{order_id}"]
    assert read["security"] == [{"bearerAccessToken": ["orders:read"]}]
    assert read["x-purpose"] == {"orders:read": "order.query"}
    assert read["x-open-during-renewal"] is False
    assert read["responses"]["428"]["x-problem-codes"] == ["policy-renewal-required"]
    nearby = operations["POST /orders/location/nearby"]
    assert nearby["x-consent-required"] == ["location"]
    assert "consent-required" in nearby["responses"]["403"]["x-problem-codes"]
    partner = operations["GET /orders/partner/orders/{order_id}"]
    assert partner["x-purpose"] == {
        "partner:customs": "customs.clearance",
        "partner:logistics": "logistics.delivery",
        "partner:tax": "tax.invoice",
    }
    purpose_header = next(p for p in partner["parameters"] if p["name"] == "X-Purpose")
    assert purpose_header["schema"]["enum"] == [
        "customs.clearance",
        "logistics.delivery",
        "tax.invoice",
    ]


def test_the_gateway_adds_its_problems_to_every_route(document: dict[str, Any]) -> None:
    for key, operation in _operations(document).items():
        responses = operation["responses"]
        for status in ("429", "502", "504"):
            assert "application/problem+json" in responses[status]["content"], (key, status)
        if operation["security"]:
            assert "401" in responses and "403" in responses, key
        if "requestBody" in operation:
            assert responses["413"]["x-problem-codes"] == ["body-too-large"], key


def test_a_response_is_documented_as_the_purpose_sees_it(document: dict[str, Any]) -> None:
    operations = _operations(document)
    own = operations["GET /orders/orders/{order_id}"]["responses"]["200"]["content"]
    order = own["application/json"]["schema"]
    # The owner (order.query) sees the customs data in full, the tax id too.
    assert {"customs_id_number", "consignee_phone"} <= set(_properties(order))
    waybill = operations["GET /orders/partner/orders/{order_id}"]["responses"]["200"]
    shapes = {
        shape["x-purpose"]: _properties(shape)
        for shape in waybill["content"]["application/json"]["schema"]["anyOf"]
    }
    courier = shapes["logistics.delivery"]
    # A courier never sees the customs identity nor the invoice's tax id ...
    assert "customs_id_number" not in courier and "invoice_tax_id" not in courier
    # ... and the consignee's phone is masked, as the catalogue says.
    assert courier["consignee_phone"]["x-masked"]["strategy"] == "partial"
    shown = courier["consignee_phone"]["anyOf"]
    assert [option["type"] for option in shown] == ["string", "null"]
    customs = shapes["customs.clearance"]
    assert "customs_id_number" in customs


def test_every_field_a_purpose_may_not_see_is_absent(
    document: dict[str, Any], catalogue: Catalogue
) -> None:
    """For every route with a resource, no success schema names a personal field its
    purpose may not see, at any depth."""
    table = load_route_table(REPO_ROOT / "policy" / "routes.yaml", catalogue)
    checked = 0
    for route in table.routes:
        if route.internal or route.resource is None:
            continue
        operation = document["paths"][route.template][route.method.lower()]
        personal = set(catalogue.fields_for(route.resource))
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            for media in response.get("content", {}).values():
                schema = media["schema"]
                per_purpose = [shape for shape in schema.get("anyOf", []) if "x-purpose" in shape]
                purposes = sorted(route.purposes)
                shapes = per_purpose or [schema] * len(purposes)
                for purpose, shape in zip(purposes, shapes, strict=True):
                    hidden = personal - set(catalogue.visible_fields(route.resource, purpose))
                    text = json.dumps(shape)
                    assert not any(f'"{name}":' in text for name in hidden), (route.key, purpose)
                    checked += 1
    assert checked > 10
