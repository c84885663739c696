"""Personal fields a purpose may not submit are refused at the gateway at every depth of the
request body (issue 23, item 7), as responses are filtered at every depth: hiding one in a
nested object or in a list element gets the same 422, naming it by its path, and the
request never reaches the service."""

from __future__ import annotations

from typing import Any

import pytest

from kit.testing import new_subject
from tests.gateway.conftest import DETAIL, NAME, PHONE
from tests.security.conftest import Suite

pytestmark = pytest.mark.security

TAX_ID = "91330106MA2B3C4D5E"
ADDRESS = {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": DETAIL}


async def goods_on_sale(suite: Suite) -> str:
    created = await suite.client.post(
        "/orders/admin/goods",
        json={"name": "Tea cup", "price": "19.90"},
        headers=suite.staff(new_subject("stf"), "catalogue_manager"),
    )
    assert created.status_code == 201, created.text
    goods_id: str = created.json()["goods_id"]
    return goods_id


def order(goods_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": [{"goods_id": goods_id, "quantity": 1}],
        "consignee_name": NAME,
        "consignee_phone": PHONE,
        "address": dict(ADDRESS),
    }
    body.update(changes)
    return body


@pytest.mark.obligation("OB-0-3")
@pytest.mark.parametrize(
    ("hidden", "path"),
    [
        ({"invoice_tax_id": TAX_ID}, "body.invoice_tax_id"),
        ({"address": {**ADDRESS, "invoice_tax_id": TAX_ID}}, "body.address.invoice_tax_id"),
        (
            {"items": [{"goods_id": "GOODS", "quantity": 1, "customs_id_number": "X"}]},
            "body.items.0.customs_id_number",
        ),
        ({"remarks_meta": [[{"deep": {"invoice_email": "a@b.cn"}}]]}, None),
    ],
    ids=["top level", "in an object", "in a list", "deep in lists"],
)
async def test_a_field_the_purpose_may_not_submit_is_refused_at_any_depth(
    suite: Suite, hidden: dict[str, Any], path: str | None
) -> None:
    """Placing an order serves ``order.fulfilment``, which may not have the invoice's tax id,
    email or the customs identity (they belong to their own steps and purposes)."""
    goods_id = await goods_on_sale(suite)
    changes = {
        key: ([{**item, "goods_id": goods_id} for item in value] if key == "items" else value)
        for key, value in hidden.items()
    }
    user = suite.user(new_subject())
    before = suite.calls()
    answer = await suite.client.post(
        "/orders/orders", json=order(goods_id, **changes), headers=user
    )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["type"].endswith("/field-not-allowed"), problem
    expected = path or "body.remarks_meta.0.0.deep.invoice_email"
    assert [error["field"] for error in problem["errors"]] == [expected], problem
    assert suite.calls() == before, "the refused body reached a service"
    assert TAX_ID not in answer.text


async def test_a_body_nested_past_any_limit_is_400_not_a_server_error(suite: Suite) -> None:
    user = suite.user(new_subject())
    deep = b"[" * 200_000 + b"]" * 200_000
    answer = await suite.client.post(
        "/orders/orders", content=deep, headers={**user, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/malformed-json"), answer.text


async def test_an_order_without_hidden_fields_passes_the_gateway(suite: Suite) -> None:
    """The control: the same order, nothing hidden, is placed."""
    goods_id = await goods_on_sale(suite)
    user = suite.user(new_subject())
    answer = await suite.client.post("/orders/orders", json=order(goods_id), headers=user)
    assert answer.status_code == 201, answer.text
