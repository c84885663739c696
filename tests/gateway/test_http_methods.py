"""RFC 9110 methods at the gateway, as an HTTP client sees them (issue 24 item 6): HEAD
wherever GET works, OPTIONS with the path's ``Allow``, 405 with the true ``Allow`` for a
method the path does not take (TRACE included), 404 for a path the route table does not
expose."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.gateway.conftest import GatewayUnderTest


async def test_head_answers_what_get_answers_without_content(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    got = await gw.client.get("/orders/goods/gds_1")
    head = await gw.client.head("/orders/goods/gds_1")
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
    assert head.headers["content-type"] == got.headers["content-type"]
    # The upstream was asked a GET (services route GET only): it saw both requests.
    assert len(orders_upstream.state.seen) == 2


async def test_head_goes_through_the_same_checks_as_get(gw: GatewayUnderTest) -> None:
    refused = await gw.client.head("/orders/orders/o1")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.content == b""

    _, user = gw.user()
    head = await gw.client.head("/orders/orders/o1", headers=user)
    assert head.status_code == 200 and head.content == b""
    # Nothing left the gateway: a HEAD records no access event.
    assert await gw.outbox_events() == []
    got = await gw.client.get("/orders/orders/o1", headers=user)
    assert head.headers["content-length"] == got.headers["content-length"]
    assert len(await gw.outbox_events()) == 1


async def test_options_answers_the_paths_allow_without_asking_the_upstream(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    listing = await gw.client.options("/orders/orders")
    assert listing.status_code == 204
    assert listing.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    one = await gw.client.options("/orders/orders/o1")
    assert one.headers["allow"] == "GET, HEAD, OPTIONS"
    item = await gw.client.options("/orders/cart/items/i1")
    assert item.headers["allow"] == "PATCH, DELETE, OPTIONS"
    assert orders_upstream.state.seen == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/orders/orders/o1", "GET, HEAD, OPTIONS"),
        ("PUT", "/orders/cart/items/i1", "PATCH, DELETE, OPTIONS"),
        ("TRACE", "/orders/orders/o1", "GET, HEAD, OPTIONS"),
        ("TRACE", "/orders/goods", "GET, HEAD, OPTIONS"),
    ],
)
async def test_a_method_the_path_does_not_take_is_405_with_the_true_allow(
    gw: GatewayUnderTest, orders_upstream: FastAPI, method: str, path: str, allow: str
) -> None:
    response = await gw.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/method-not-allowed")
    assert body["instance"] == path and body["allow"] == allow.split(", ")
    assert orders_upstream.state.seen == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/orders/no-such-thing"),
        ("TRACE", "/orders/no-such-thing"),
        ("OPTIONS", "/orders/no-such-thing"),
        ("HEAD", "/orders/no-such-thing"),
        ("TRACE", "/nowhere"),
        ("DELETE", "/nowhere"),
        # Internal routes are not exposed: their paths are unknown at the gateway.
        ("GET", "/identity/healthz"),
        ("OPTIONS", "/identity/healthz"),
        ("TRACE", "/identity/healthz"),
    ],
)
async def test_a_path_the_table_does_not_expose_is_404_whatever_the_method(
    gw: GatewayUnderTest, method: str, path: str
) -> None:
    response = await gw.client.request(method, path)
    assert response.status_code == 404
    assert "allow" not in response.headers


async def test_the_gateways_own_routes_answer_head_and_405_with_their_allow(
    gw: GatewayUnderTest,
) -> None:
    got = await gw.client.get("/healthz")
    head = await gw.client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    trace = await gw.client.request("TRACE", "/healthz")
    assert trace.status_code == 405
    assert trace.headers["allow"] == "GET, HEAD, OPTIONS"
    assert trace.json()["type"].endswith("/method-not-allowed")
    options = await gw.client.options("/healthz")
    assert options.status_code == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS"
