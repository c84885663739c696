"""Retention: each personal field of an order is kept for its own period from completion
and then deleted; an order with nothing personal left is anonymised, its facts kept; the
sweep runs on a schedule, on demand for staff, and from the shell (OB-4-1, OB-4-2)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.settings import REPO_ROOT
from kit.testing import eventually
from services.orders.models import Order, OrderIdempotencyKey, OrderStatusChange
from services.orders.retention.schemas import SweepReport
from services.orders.retention.service import ANONYMOUS, run_sweep
from tests.services.orders.conftest import Orders
from tests.services.orders.test_orders import (
    DETAIL,
    EMAIL,
    EXTRA_MOBILE,
    NAME,
    PHONE,
    TAX_ID,
    order_body,
    place,
)

DAY = timedelta(days=1)
INVOICE = {"title": "Signature Ltd", "tax_id": TAX_ID, "email": EMAIL}


async def completed_order(orders: Orders, headers: dict[str, str], **extra: Any) -> Order:
    goods = await orders.add_goods()
    order = await place(orders, headers, order_body(goods["goods_id"], **extra))
    await orders.advance(order["order_id"], "paid", "assigned", "shipped", "delivered", "completed")
    return await stored(orders, order["order_id"])


async def stored(orders: Orders, order_id: str) -> Order:
    async with orders.context.database.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order


async def sweep(orders: Orders, now: datetime) -> SweepReport:
    context = orders.context
    return await run_sweep(
        context.database, events=context.events, catalogue=context.catalogue, now=now
    )


def removed(report: SweepReport) -> dict[str, int]:
    return {item.field: item.removed for item in report.fields if item.removed}


def years(start: datetime, count: int) -> datetime:
    return start.replace(year=start.year + count)


@pytest.mark.obligation("OB-4-2")
async def test_each_field_goes_when_its_own_period_ends_and_then_the_order_is_anonymised(
    orders: Orders,
) -> None:
    buyer, headers = orders.user()
    order = await completed_order(
        orders, headers, extra_phones=[EXTRA_MOBILE], invoice=INVOICE, remarks="请放门口"
    )
    done = order.completed_at
    assert done is not None

    # Nothing before the shortest period (90 days for extra phones and the invoice email).
    report = await sweep(orders, done + timedelta(days=89))
    assert removed(report) == {} and report.orders_anonymised == 0
    assert (await stored(orders, order.id)).retention_starts_at == done

    # After 90 days: only the contact data kept for delivery and after-sales.
    report = await sweep(orders, done + timedelta(days=90, seconds=1))
    assert removed(report) == {"extra_phones": 1, "invoice_email": 1}
    assert report.orders_changed == 1 and report.orders_anonymised == 0
    view = (await orders.client.get(f"/orders/{order.id}", headers=headers)).json()
    assert view["extra_phones"] is None and view["invoice_email"] is None
    assert view["consignee_name"] == NAME and view["invoice_tax_id"] == TAX_ID

    # Just before 3 years: the transaction record is still kept (E-Commerce Law art. 31).
    assert removed(await sweep(orders, years(done, 3) - DAY)) == {}
    report = await sweep(orders, years(done, 3))
    assert removed(report) == {
        "consignee_name": 1,
        "consignee_phone": 1,
        "address_region": 1,
        "address_detail": 1,
        "remarks": 1,
    }
    kept = await stored(orders, order.id)
    assert kept.consignee_name_encrypted == "" and kept.remarks_encrypted is None
    assert kept.invoice_title_encrypted and kept.invoice_tax_id_encrypted  # tax record: 10 years
    assert kept.anonymised_at is None and kept.buyer_id == buyer
    # The buyer still reads what is kept, without the fields that are gone.
    partial = await orders.client.get(f"/orders/{order.id}", headers=headers)
    assert partial.status_code == 200, partial.text
    assert partial.json()["consignee_name"] is None
    assert partial.json()["invoice_tax_id"] == TAX_ID

    # After 10 years the tax record goes too, and nothing personal is left.
    assert removed(await sweep(orders, years(done, 10) - DAY)) == {}
    report = await sweep(orders, years(done, 10))
    assert removed(report) == {"invoice_title": 1, "invoice_tax_id": 1}
    assert report.orders_anonymised == 1
    assert (await sweep(orders, years(done, 20))).orders_examined == 0  # nothing left to do

    gone = await stored(orders, order.id)
    assert gone.anonymised_at == years(done, 10)
    assert gone.buyer_id == ANONYMOUS
    assert all(
        getattr(gone, name) in (None, "") for name in vars(gone) if name.endswith("_encrypted")
    )
    # The facts stay, for statistics and reconciliation.
    assert (gone.status, gone.amount_payable, gone.currency) == (
        "completed",
        order.amount_payable,
        "CNY",
    )
    assert (gone.created_at, gone.completed_at) == (order.created_at, done)
    async with orders.context.database.session() as session:
        history = list(
            await session.scalars(
                select(OrderStatusChange)
                .where(col(OrderStatusChange.order_id) == order.id)
                .order_by(col(OrderStatusChange.id))
            )
        )
    assert history[0].status == "placed"
    assert buyer not in {change.actor for change in history}
    # The buyer no longer finds it: it is not their personal data any more.
    assert (await orders.client.get(f"/orders/{order.id}", headers=headers)).status_code == 404

    events = [e for e in await orders.outbox_events() if e.subject == buyer]
    deletions = [e for e in events if e.type == "com.signature.orders.personal_data.delete.v1"]
    assert len(deletions) == 3
    assert all(e.purpose == "legal.retention" for e in deletions)
    assert set(deletions[0].categories) == {"user.contact.phone_number", "user.contact.email"}
    [anonymised] = [e for e in events if e.type == "com.signature.orders.order.anonymised.v1"]
    assert anonymised.data["order_id"] == order.id and anonymised.purpose == "legal.retention"
    text = " ".join(e.model_dump_json() for e in events)
    for secret in (NAME, PHONE, EXTRA_MOBILE, DETAIL, TAX_ID, EMAIL, "Signature Ltd"):
        assert secret not in text


@pytest.mark.obligation("OB-4-2")
async def test_an_order_without_tax_records_is_anonymised_after_three_years(
    orders: Orders,
) -> None:
    _, headers = orders.user()
    goods = await orders.add_goods()
    placed = await orders.client.post(
        "/orders",
        json=order_body(goods["goods_id"]),
        headers={**headers, "Idempotency-Key": "retry-me"},
    )
    order_id = placed.json()["order_id"]
    await orders.advance(order_id, "paid", "assigned", "shipped", "delivered", "completed")
    done = (await stored(orders, order_id)).completed_at
    assert done is not None

    report = await sweep(orders, years(done, 3))
    assert report.orders_anonymised == 1
    async with orders.context.database.session() as session:
        keys = await session.scalars(
            select(OrderIdempotencyKey).where(col(OrderIdempotencyKey.order_id) == order_id)
        )
        assert list(keys) == []
    listed = (await orders.client.get("/orders", headers=headers)).json()
    assert listed["items"] == []


@pytest.mark.obligation("OB-4-1")
async def test_open_orders_are_never_swept_and_cancelled_ones_count_from_cancellation(
    orders: Orders,
) -> None:
    _, headers = orders.user()
    goods = await orders.add_goods()
    open_order = (await place(orders, headers, order_body(goods["goods_id"])))["order_id"]
    cancelled = (await place(orders, headers, order_body(goods["goods_id"])))["order_id"]
    await orders.advance(open_order, "paid")
    await orders.advance(cancelled, "cancelled")
    cancelled_at = (await stored(orders, cancelled)).created_at

    report = await sweep(orders, cancelled_at + timedelta(days=1))
    assert report.orders_examined == 0
    assert (await stored(orders, cancelled)).retention_starts_at is not None
    assert (await stored(orders, open_order)).retention_starts_at is None

    report = await sweep(orders, years(cancelled_at, 3) + DAY)
    assert report.orders_anonymised == 1
    assert (await stored(orders, cancelled)).anonymised_at is not None
    still_open = await stored(orders, open_order)
    assert still_open.anonymised_at is None and still_open.consignee_name_encrypted


# --------------------------------------------------------------------------- how it runs


@pytest.mark.obligation("OB-4-2")
async def test_staff_with_admin_policy_run_the_sweep_others_are_refused(orders: Orders) -> None:
    _, headers = orders.user()
    order = await completed_order(orders, headers, extra_phones=[EXTRA_MOBILE])
    assert order.completed_at is not None

    _, buyer = orders.user()
    _, support = orders.staff("customer_service")
    _, partner = orders.partner()
    for caller in (buyer, support, partner):
        response = await orders.client.post("/admin/retention/sweep", headers=caller)
        assert response.status_code == 403

    _, officer = orders.staff("privacy_officer")
    response = await orders.client.post("/admin/retention/sweep", headers=officer)
    assert response.status_code == 200, response.text
    assert response.json()["orders_changed"] == 0  # today nothing has expired
    assert {item["field"] for item in response.json()["fields"]} >= {"consignee_name"}

    moved = years(order.completed_at, 3)
    orders.app.state.retention_clock = lambda: moved
    response = await orders.client.post("/admin/retention/sweep", headers=officer)
    report = response.json()
    assert report["orders_anonymised"] == 1
    assert datetime.fromisoformat(report["ran_at"]) == moved
    assert {item["field"]: item["removed"] for item in report["fields"]}["extra_phones"] == 1


@pytest.mark.obligation("OB-4-2")
async def test_the_sweeper_runs_beside_the_app(orders: Orders) -> None:
    sweeper = orders.app.state.retention_sweeper
    assert sweeper.running
    await eventually(lambda: _true(sweeper.sweeps >= 1), timeout_s=10, what="the first sweep")
    _, headers = orders.user()
    order = await completed_order(orders, headers)
    assert order.completed_at is not None
    moved = years(order.completed_at, 3)
    orders.app.state.retention_clock = lambda: moved
    sweeper.wake()
    await eventually(
        lambda: _true(sweeper.last_report is not None and sweeper.last_report.ran_at == moved),
        timeout_s=10,
        what="a sweep at the moved clock",
    )
    assert sweeper.last_report.orders_anonymised == 1
    assert (await stored(orders, order.id)).anonymised_at == moved


async def _true(value: bool) -> bool:
    return value


@pytest.mark.obligation("OB-4-2")
async def test_the_sweep_runs_from_the_shell(orders: Orders) -> None:
    environment = {
        **os.environ,
        "ORDERS_DATABASE_URL": orders.settings.database_url,
        "ORDERS_LOG_JSON": "false",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.orders",
        "sweep",
        cwd=REPO_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["orders_anonymised"] == 0 and "fields" in report
