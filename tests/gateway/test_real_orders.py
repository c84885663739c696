"""Through the real orders service, in-process: a buyer orders and reads the order, staff
assign a courier, the courier reads the privacy waybill, all through the gateway
(OB-3-1, OB-2D-7, OB-0-2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.testing import TEST_ISSUER, UNREACHABLE_KAFKA, serve_app, trust_only
from services.orders.config import Settings as OrdersSettings
from services.orders.orders import service as orders_service
from tests.gateway.conftest import DETAIL, EMAIL, KEY, NAME, PHONE, TAX_ID, running_gateway


@pytest.mark.obligation("OB-3-1")
async def test_an_order_and_its_waybill_through_the_gateway(tmp_path: Path) -> None:
    settings = OrdersSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/orders.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=TEST_ISSUER,
        log_json=False,
    )
    async with serve_app("services.orders", settings) as (orders_app, _):
        trust_only(orders_app, KEY)
        async with running_gateway(tmp_path, {"orders": orders_app}) as gw:
            _, catalogue = gw.staff(["admin:catalogue"])
            _, admin = gw.staff(["admin:partners"])
            goods = await gw.client.post(
                "/orders/admin/goods", json={"name": "Tea set", "price": "99.90"}, headers=catalogue
            )
            assert goods.status_code == 201, goods.text

            buyer, user = gw.user()
            body = {
                "items": [{"goods_id": goods.json()["goods_id"], "quantity": 1}],
                "consignee_name": NAME,
                "consignee_phone": PHONE,
                "address": {
                    "province": "浙江省",
                    "city": "杭州市",
                    "district": "西湖区",
                    "detail": DETAIL,
                },
                "invoice": {"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL},
            }
            placed = await gw.client.post("/orders/orders", json=body, headers=user)
            assert placed.status_code == 201, placed.text
            order = placed.json()
            # Placing serves order.fulfilment: the invoice data is not part of its view.
            assert order["consignee_phone"] == PHONE
            assert "invoice_tax_id" not in order
            order_id = order["order_id"]

            mine = (await gw.client.get(f"/orders/orders/{order_id}", headers=user)).json()
            assert mine["invoice_tax_id"] == TAX_ID and mine["consignee_name"] == NAME

            async with orders_app.state.context.database.session() as session:
                await orders_service.change_status(
                    session,
                    events=orders_app.state.context.events,
                    order_id=order_id,
                    status="paid",
                    actor="test",
                )
            courier, _ = gw.partner("partner:logistics", ["logistics.delivery"])
            assigned = await gw.client.put(
                f"/orders/admin/orders/{order_id}/partners",
                json={"logistics_partner_id": courier},
                headers=admin,
            )
            assert assigned.status_code == 200, assigned.text

            token = gw.token(
                courier,
                ["partner:logistics"],
                kind="partner",
                client_type="server",
                purposes=["logistics.delivery"],
            )
            waybill = await gw.client.get(
                f"/orders/partner/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert waybill.status_code == 200, waybill.text
            seen = waybill.json()
            assert seen["consignee_name"] == "张**" and seen["consignee_phone"] == "138****5678"
            assert seen["address_detail"] == DETAIL
            for secret in (PHONE, NAME, TAX_ID, EMAIL):
                assert secret not in waybill.text

            events = await gw.outbox_events()
            assert [(e.subject, e.purpose) for e in events] == [
                (buyer, "order.fulfilment"),
                (buyer, "order.query"),
            ]  # the courier's read is recorded by orders, with the buyer as subject
