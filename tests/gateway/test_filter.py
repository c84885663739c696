"""Minimum necessary at the gateway: a response holds only the fields its purpose may
see, masked as the catalogue says (OB-3-1, OB-3-2, OB-2D-7); requests may not carry
personal fields their purpose may not have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Response

from kit.catalogue import default_catalogue
from kit.field_filter import FieldFilter
from kit.masking import mask_value
from tests.gateway.conftest import (
    CUSTOMS_NAME,
    DETAIL,
    EMAIL,
    FULL_ORDER,
    ID_NUMBER,
    NAME,
    PHONE,
    SECRETS,
    TAX_ID,
    GatewayUnderTest,
    running_gateway,
)

RESOURCE = "orders.order"
PARTNERS = {
    "logistics.delivery": "partner:logistics",
    "customs.clearance": "partner:customs",
    "tax.invoice": "partner:tax",
}


def expected_view(purpose: str) -> dict[str, Any]:
    """What ``purpose`` may see of FULL_ORDER, straight from the catalogue."""
    catalogue = default_catalogue()
    personal = catalogue.fields_for(RESOURCE)
    view: dict[str, Any] = {}
    for name, value in FULL_ORDER.items():
        if name not in personal:
            view[name] = value
        elif purpose in personal[name].purposes:
            view[name] = mask_value(value, catalogue.masking_rule(personal[name].purposes[purpose]))
    return view


@pytest.mark.obligation("OB-3-1")
@pytest.mark.parametrize("purpose", sorted(PARTNERS))
async def test_a_partner_gets_exactly_the_fields_of_its_purpose_masked(
    gw: GatewayUnderTest, purpose: str
) -> None:
    _, headers = gw.partner(PARTNERS[purpose], [purpose])
    response = await gw.client.get("/orders/partner/orders/ord_fake", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == expected_view(purpose)
    listed = await gw.client.get("/orders/partner/orders", headers=headers)
    assert listed.json()["items"] == [expected_view(purpose)] * 2  # nested in lists too


@pytest.mark.obligation("OB-3-1")
async def test_the_privacy_waybill_by_hand(gw: GatewayUnderTest) -> None:
    _, headers = gw.partner("partner:logistics", ["logistics.delivery"])
    response = await gw.client.get("/orders/partner/orders/ord_fake", headers=headers)
    waybill = response.json()
    assert waybill["consignee_name"] == "张**"
    assert waybill["consignee_phone"] == "138****5678"
    assert waybill["extra_phones"] == ["139****4321"]
    assert waybill["address_region"] == {
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
    }
    assert waybill["address_detail"] == DETAIL
    assert waybill["postal_code"] == "310012"
    assert waybill["remarks"] == "请放门口"
    for gone in ("invoice_title", "invoice_tax_id", "invoice_email", "customs_name",
                 "customs_id_number"):  # fmt: skip
        assert gone not in waybill
    assert waybill["order_id"] == "ord_fake"
    assert "amount_payable" not in waybill and "lines" not in waybill  # the buyer's record
    for secret in (PHONE, NAME, TAX_ID, EMAIL, CUSTOMS_NAME, ID_NUMBER, "Signature Ltd"):
        assert secret not in response.text


@pytest.mark.obligation("OB-3-1")
async def test_the_customs_broker_and_the_invoicing_partner_by_hand(gw: GatewayUnderTest) -> None:
    _, broker = gw.partner("partner:customs", ["customs.clearance"])
    customs = (await gw.client.get("/orders/partner/orders/o1", headers=broker)).json()
    personal = set(default_catalogue().fields_for(RESOURCE))
    assert {k for k in customs if k in personal} == {
        "customs_name",
        "customs_id_number",
        "amount_payable",  # the declared value
        "lines",
    }
    assert customs["customs_name"] == CUSTOMS_NAME and customs["customs_id_number"] == ID_NUMBER

    _, invoicer = gw.partner("partner:tax", ["tax.invoice"])
    invoice = (await gw.client.get("/orders/partner/orders/o1", headers=invoicer)).json()
    assert {k for k in invoice if k in personal} == {
        "invoice_title",
        "invoice_tax_id",
        "invoice_email",
        "amount_payable",  # the invoice states the goods and amounts
        "lines",
    }
    assert invoice["invoice_email"] == EMAIL


@pytest.mark.obligation("OB-2D-7")
async def test_the_owner_sees_their_order_as_order_query_says(gw: GatewayUnderTest) -> None:
    _, headers = gw.user()
    response = await gw.client.get("/orders/orders/ord_fake", headers=headers)
    order = response.json()
    assert order == expected_view("order.query")
    assert order["consignee_phone"] == PHONE and order["invoice_tax_id"] == TAX_ID
    assert order["customs_id_number"] == "1****************X"  # masked even for the owner


async def test_an_answer_with_numbers_past_64_bits_keeps_every_digit(tmp_path: Path) -> None:
    # The gateway reads and writes answers with orjson, which stops at 64-bit integers:
    # such an answer is read and written as Python's json does, never refused or rounded.
    big = 123456789012345678901234567890
    upstream = FastAPI()

    @upstream.get("/orders/{order_id}")
    async def own_order(order_id: str) -> Response:
        order = {**FULL_ORDER, "order_id": order_id, "lines": [{"goods_id": "g", "quantity": big}]}
        return Response(content=json.dumps(order), media_type="application/json")

    async with running_gateway(tmp_path, {"orders": upstream}) as gw:
        _, headers = gw.user()
        response = await gw.client.get("/orders/orders/ord_big", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {**expected_view("order.query"), "order_id": "ord_big",
                               "lines": [{"goods_id": "g", "quantity": big}]}  # fmt: skip
    assert str(big).encode() in response.content


async def test_a_request_may_not_carry_personal_fields_its_purpose_may_not_have(
    gw: GatewayUnderTest,
) -> None:
    _, headers = gw.user()
    body = {"items": [], "consignee_name": NAME, "invoice_tax_id": TAX_ID}
    refused = await gw.client.post("/orders/orders", json=body, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.invoice_tax_id"
    assert TAX_ID not in refused.text
    allowed = await gw.client.post(
        "/orders/orders", json={"items": [], "consignee_name": NAME}, headers=headers
    )
    assert allowed.status_code == 201


def test_the_filter_is_compiled_once_and_fails_closed() -> None:
    fields = FieldFilter(default_catalogue())
    with pytest.raises(KeyError):
        fields.filter({}, resource=RESOURCE, purpose="no.such.purpose")
    result = fields.filter(
        {"page": {"items": [{"consignee_phone": PHONE, "note": "x"}]}},
        resource=RESOURCE,
        purpose="marketing.price_drop",
    )
    assert result.value == {"page": {"items": [{"note": "x"}]}}
    assert result.categories == ()
    assert (result.removed, result.masked) == (1, 0)
    shown = fields.filter(FULL_ORDER, resource=RESOURCE, purpose="customer_service")
    for secret in SECRETS:
        assert secret not in str(shown.value), secret
    assert shown.masked > 0, "customer service sees masked values, counted for the metrics"
