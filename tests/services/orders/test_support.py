"""Customer service at orders (policy 2E, OB-2E-1, OB-2E-2): the communication record is
kept with the case, encrypted, under its own retention; the de-identification replaces
every kind of value it detects with stable placeholders. Through the gateway:
tests/e2e/test_support.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kit.models import utcnow
from services.orders.retention.service import run_sweep
from services.orders.support.deidentify import Known, Placeholders, deidentify
from tests.services.orders.conftest import Orders


@pytest.mark.obligation("OB-2E-1")
async def test_the_record_stays_with_the_case_until_its_own_period_ends(orders: Orders) -> None:
    _, headers = orders.user()
    opened = await orders.client.post(
        "/support/cases", json={"topic": "other", "text": "请问发票开了吗 qzxv"}, headers=headers
    )
    assert opened.status_code == 201, opened.text
    assert b"qzxv" not in orders.raw_database()  # the text is ciphertext
    context = orders.context
    period = context.catalogue.retention_for("orders.support", "messages")
    assert period.duration == "P3Y"

    async def cases_after(days: int) -> int:
        await run_sweep(
            context.database, events=context.events, catalogue=context.catalogue,
            now=utcnow() + timedelta(days=days),
        )  # fmt: skip
        listed = await orders.client.get("/support/cases", headers=headers)
        return len(listed.json())

    assert await cases_after(365 * 3 - 2) == 1
    assert await cases_after(365 * 3 + 1) == 0


@pytest.mark.obligation("OB-2E-2")
def test_deidentification_replaces_detected_values_with_stable_placeholders() -> None:
    known = Known.of([("NAME", "欧阳娜娜"), ("REF", "acc_abcdefgh")])
    placeholders = Placeholders()
    first = deidentify(
        "我是欧阳娜娜, 手机 138-1234-5678, 邮箱 a.b@example.cn, 账号 acc_abcdefgh", known,
        placeholders,
    )  # fmt: skip
    second = deidentify(
        "再说一遍: +86 13812345678, 身份证 11010119900307123X, 地址: 文三路100号1幢101室",
        known, placeholders,
    )  # fmt: skip
    assert first == "我是[NAME_1], 手机 [PHONE_1], 邮箱 [EMAIL_1], 账号 [REF_1]"
    assert second == "再说一遍: [PHONE_1], 身份证 [ID_NUMBER_1], 地址: [ADDRESS_1]"
