"""The route table: checked against the catalogue at start, complete against every
service's OpenAPI, and the only way through the gateway (OB-3-1, OB-2D-7)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fastapi import FastAPI

from gateway.config import DEFAULT_ROUTES, Settings
from gateway.main import create_app
from gateway.routes import UPSTREAMS, RouteTableError, load_route_table, parse_route_table
from kit.catalogue import default_catalogue
from kit.settings import ServiceSettings
from kit.testing import UNREACHABLE_KAFKA
from tests.gateway.conftest import GatewayUnderTest

OPS_PATHS = {"/healthz", "/readyz", "/metrics"}


def service_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, /<upstream><path>) of every operation in every service's OpenAPI."""
    found: set[tuple[str, str]] = set()
    for name in UPSTREAMS:
        settings_class: type[ServiceSettings] = importlib.import_module(
            f"services.{name}.config"
        ).Settings
        settings = settings_class(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
            kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        )
        app = importlib.import_module(f"services.{name}.main").create_app(settings)
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                found.add((method.upper(), f"/{name}{path}"))
    return found


@pytest.mark.obligation("OB-3-1")
def test_every_service_route_is_in_the_table_and_ops_routes_are_internal(
    tmp_path: Path,
) -> None:
    table = load_route_table(DEFAULT_ROUTES, default_catalogue())
    listed = {(route.method, route.template): route for route in table.routes}
    missing = sorted(op for op in service_operations(tmp_path) if op not in listed)
    assert not missing, f"routes missing from policy/routes.yaml: {missing}"
    for (_, template), route in listed.items():
        if "/" + template.split("/", 2)[2] in OPS_PATHS:
            assert route.internal, template
        else:
            assert route.internal or route.purposes, template


def test_an_unknown_purpose_or_resource_stops_start_up_naming_the_line() -> None:
    text = """version: 1
routes:
  - route: GET /orders/goods
    public: true
    purpose: browse
  - route: GET /orders/orders/{order_id}
    scopes: [orders:read]
    purpose: order.peek
    resource: orders.orders
  - route: GET /orders/cart
    scopes: [orders:bogus]
    purpose: location
    public: true
"""
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text, default_catalogue())
    message = str(caught.value)
    assert "routes.yaml:6: unknown purpose 'order.peek'" in message
    assert "routes.yaml:6: unknown resource 'orders.orders'" in message
    assert "routes.yaml:10: unknown scope 'orders:bogus'" in message
    assert "routes.yaml:10: a public route cannot serve a purpose that needs consent" in message


def test_which_routes_stay_open_during_a_renewal_is_checked_at_start() -> None:
    text = """version: 1
routes:
  - route: GET /consent/ledger/me
    scopes: [consent:read]
    purpose: rights.access
    during_renewal: open
  - route: GET /orders/cart
    scopes: [orders:read]
    purpose: cart
    during_renewal: always
  - route: GET /consent/policy
    public: true
    purpose: account
    during_renewal: open
  - route: GET /consent/rights/export/{subject}
    internal: true
    during_renewal: open
"""
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text, default_catalogue())
    assert str(caught.value).splitlines() == [
        "routes.yaml:7: 'during_renewal' is one of open, refused",
        "routes.yaml:11: 'during_renewal: open' is for routes that need a token "
        "(public ones never wait)",
        "routes.yaml:15: an internal route is never exposed: 'during_renewal' does not apply",
    ]
    table = parse_route_table(
        text.split("  - route: GET /orders/cart", maxsplit=1)[0], default_catalogue()
    )
    assert [route.open_during_renewal for route in table.routes] == [True]


@pytest.mark.obligation("OB-5-3")
def test_every_right_of_the_user_stays_open_during_a_renewal_and_shopping_does_not() -> None:
    table = load_route_table(DEFAULT_ROUTES, default_catalogue())
    open_routes = {route.key for route in table.routes if route.open_during_renewal}
    assert {
        "GET /identity/accounts/me",
        "POST /consent/policy/agreements",
        "POST /consent/consents",
        "POST /consent/rights-requests",
        "GET /consent/rights-requests/{request_id}",
        "GET /consent/rights-requests/{request_id}/export",
        "GET /consent/ledger/me",
        "GET /consent/notices/me",
        "GET /transfer/transfers/me",
    } <= open_routes
    assert not {"POST /orders/orders", "GET /orders/cart", "POST /orders/cart/items"} & open_routes


async def test_a_broken_route_table_stops_the_gateway(tmp_path: Path) -> None:
    broken = tmp_path / "routes.yaml"
    broken.write_text(
        DEFAULT_ROUTES.read_text().replace("purpose: order.query", "purpose: order.querry", 1)
    )
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        routes_path=broken,
    )
    app = create_app(settings)
    with pytest.raises(RouteTableError, match=r"routes\.yaml:\d+: unknown purpose 'order\.querry'"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.obligation("OB-3-1")
async def test_unlisted_and_internal_routes_are_refused_and_never_proxied(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    _, user = gw.user()
    for method, path in [
        ("GET", "/orders/healthz"),
        ("GET", "/orders/readyz"),
        ("GET", "/orders/metrics"),
        ("GET", "/orders/internal/secret"),
        ("GET", "/billing/anything"),
        ("GET", "/orders/goods/%2e%2e/orders/ord_1"),
        ("GET", "/orders/orders/%2e%2e"),
        ("GET", "/orders/rights-requests/r1/corrections/orders"),
    ]:
        response = await gw.client.request(method, path, headers=user)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # A listed path under a method it does not take: 405 with its Allow (RFC 9110 15.5.6).
    wrong = await gw.client.request("DELETE", "/orders/orders/ord_1", headers=user)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS"
    assert orders_upstream.state.seen == []  # refused, never proxied


def test_an_owner_field_is_checked_at_start() -> None:
    text = """version: 1
routes:
  - route: GET /orders/security/accounts/{account_id}/orders
    scopes: [security:read]
    purpose: security.anti_fraud
    owner_field: account_id
  - route: GET /orders/partner/orders/{order_id}
    scopes: [partner:logistics]
    purpose: logistics.delivery
    resource: orders.order
    owner_field: consignee_phone
  - route: GET /orders/support/agent/cases/{case_id}
    scopes: [support:read]
    purpose: customer_service
    resource: orders.support
    owner_field: Account-Id
    owner_hidden: yes please
  - route: GET /orders/support/agent/cases/{case_id}/order
    scopes: [support:read]
    purpose: customer_service
    resource: orders.order
    owner_hidden: true
"""
    with pytest.raises(RouteTableError) as caught:
        parse_route_table(text, default_catalogue())
    assert str(caught.value).splitlines() == [
        "routes.yaml:3: 'owner_field' needs a 'resource': the owner is read from filtered answers",
        "routes.yaml:7: 'owner_field' names the owner's account id, not the personal field "
        "'consignee_phone' of orders.order",
        "routes.yaml:12: 'owner_field' is a field name",
        "routes.yaml:12: 'owner_hidden' is true or false",
        "routes.yaml:18: 'owner_hidden' needs an 'owner_field'",
    ]


def test_every_partner_or_staff_read_of_one_record_names_whose_data_it_is() -> None:
    """The gateway's restriction and legal-hold check on someone else's read runs only on
    routes naming the owner: every partner or staff route answering one record (a path
    parameter) of a resource names it, and a partner never sees the buyer's account id."""
    table = load_route_table(DEFAULT_ROUTES, default_catalogue())
    others = [
        route
        for route in table.routes
        if not route.internal
        and route.resource is not None
        and "{" in route.template
        and route.scopes
        and all(scope.split(":")[0] in {"partner", "support", "security"} for scope in route.scopes)
    ]
    assert {route.key for route in others} >= {
        "GET /orders/partner/orders/{order_id}",
        "GET /identity/security/accounts/{account_id}",
        "GET /orders/security/accounts/{account_id}/orders",
        "GET /orders/support/agent/cases/{case_id}",
        "GET /orders/support/agent/cases/{case_id}/order",
    }
    assert [route.key for route in others if route.owner_field is None] == []
    hidden = {route.key for route in table.routes if route.owner_hidden}
    assert hidden == {"GET /orders/partner/orders/{order_id}"}
