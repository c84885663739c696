"""Every error is RFC 9457 problem+json; validation errors name each bad field; no stack
trace reaches a client."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from kit.errors import PROBLEM_JSON, Conflict, install_problem_handlers


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str
    street: str


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consignee_name: str
    address: Address


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/orders")
    async def create(order: OrderIn) -> dict[str, str]:
        if order.consignee_name == "taken":
            raise Conflict("an order with this idempotency key exists")
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    return app


async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.obligation("OB-0-3")
async def test_missing_and_unexpected_fields_are_named() -> None:
    response = await call(
        "POST", "/orders", json={"address": {"city": "Hangzhou"}, "id_number": "110105194912310021"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"body.consignee_name", "body.address.street", "body.id_number"}
    assert "110105194912310021" not in response.text, "input values are never echoed"


@pytest.mark.obligation("OB-0-3")
async def test_domain_errors_keep_their_status() -> None:
    response = await call(
        "POST",
        "/orders",
        json={
            "consignee_name": "taken",
            "address": {"city": "Hangzhou", "street": "1 West Lake Rd"},
        },
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "an order with this idempotency key exists"
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.obligation("OB-0-3")
async def test_unexpected_errors_show_no_internals() -> None:
    response = await call("GET", "/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "secret" not in response.text and "Traceback" not in response.text


@pytest.mark.obligation("OB-0-3")
async def test_unknown_routes_are_problems_too() -> None:
    response = await call("GET", "/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
