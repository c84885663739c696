"""Delivery over HTTPS: an endpoint that is down is retried with backoff, every attempt is
recorded, nothing is lost, and the idempotency key keeps a retry after a lost response from
delivering twice (OB-4-3: the one path abroad is reliable and accounted for)."""

from __future__ import annotations

import httpx
import pytest

from services.transfer.transfers.delivery import HttpsDeliverer
from tests.services.transfer.conftest import TransferApp


async def _ready_transfer(transfer: TransferApp) -> str:
    recipient = await transfer.register()
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert requested["status"] == "ready"
    transfer_id: str = requested["id"]
    return transfer_id


@pytest.mark.obligation("OB-4-3")
async def test_down_twice_then_up_delivers_once_with_every_attempt_recorded(
    transfer: TransferApp,
) -> None:
    transfer.endpoint.down = 2
    transfer_id = await _ready_transfer(transfer)
    await transfer.run_worker()

    delivered = await transfer.transfer(transfer_id)
    assert delivered["status"] == "delivered"
    assert [(a["number"], a["outcome"], a["status_code"]) for a in delivered["attempts"]] == [
        (1, "failed", 503),
        (2, "failed", 503),
        (3, "delivered", 200),
    ]
    requests = transfer.endpoint.requests
    assert len(requests) == 3
    assert {r.headers["Idempotency-Key"] for r in requests} == {transfer_id}
    assert len({r.content for r in requests}) == 1  # the same package every time
    assert list(transfer.endpoint.kept) == [transfer_id]


@pytest.mark.obligation("OB-4-3")
async def test_a_lost_response_is_retried_and_the_recipient_keeps_the_package_once(
    transfer: TransferApp,
) -> None:
    transfer.endpoint.lose = 1
    transfer_id = await _ready_transfer(transfer)
    await transfer.run_worker()

    delivered = await transfer.transfer(transfer_id)
    assert delivered["status"] == "delivered"
    assert [(a["outcome"], a["error"]) for a in delivered["attempts"]] == [
        ("failed", "ReadTimeout"),
        ("delivered", None),
    ]
    assert len(transfer.endpoint.requests) == 2
    assert list(transfer.endpoint.kept) == [transfer_id]


@pytest.mark.obligation("OB-4-3")
async def test_a_round_that_fails_keeps_the_package_and_a_later_round_delivers(
    transfer: TransferApp,
) -> None:
    attempts = transfer.settings.delivery_attempts_per_round
    transfer.endpoint.down = attempts
    transfer_id = await _ready_transfer(transfer)
    await transfer.run_worker()

    waiting = await transfer.transfer(transfer_id)
    assert waiting["status"] == "ready"
    assert waiting["rounds"] == 1 and waiting["reason"] == "delivery_failed: HTTP 503"
    assert waiting["package_sha256"] and waiting["next_attempt_at"]
    assert len(waiting["attempts"]) == attempts

    await transfer.run_worker()  # the next round (round backoff is 0 in the tests)
    delivered = await transfer.transfer(transfer_id)
    assert delivered["status"] == "delivered"
    assert delivered["package_sha256"] == waiting["package_sha256"]  # the same package
    assert len(delivered["attempts"]) == attempts + 1
    assert list(transfer.endpoint.kept) == [transfer_id]
    assert len(transfer.orders.calls) == 1  # fetched once, kept encrypted meanwhile


@pytest.mark.obligation("OB-4-3")
async def test_a_refusing_endpoint_ends_the_round_at_once(transfer: TransferApp) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "bad package"})

    transfer.app.state.deliverer = HttpsDeliverer(transport=httpx.MockTransport(refuse))
    transfer_id = await _ready_transfer(transfer)
    await transfer.run_worker()
    waiting = await transfer.transfer(transfer_id)
    assert waiting["status"] == "ready" and waiting["reason"] == "delivery_failed: HTTP 400"
    assert [a["status_code"] for a in waiting["attempts"]] == [400]


@pytest.mark.obligation("OB-4-3")
async def test_redirects_are_not_followed(transfer: TransferApp) -> None:
    elsewhere: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.host != "waybills.harbour-freight.example":
            elsewhere.append(request)
            return httpx.Response(200)
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/take"})

    transfer.app.state.deliverer = HttpsDeliverer(transport=httpx.MockTransport(redirect))
    transfer_id = await _ready_transfer(transfer)
    await transfer.run_worker()
    assert (await transfer.transfer(transfer_id))["status"] == "ready"
    assert elsewhere == []
