"""The transfer service reads the real orders app (over ``httpx.ASGITransport``) with a
service token from a ``ServiceTokenProvider`` (identity's token endpoint stood in for by a
``MockTransport`` that mints with the test key both apps trust), builds the package from
what orders answered, and orders records the read (OB-4-4, OB-4-7); the app wires the
provider from its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kit.auth import Scope
from kit.service_token import ServiceTokenProvider
from kit.testing import TEST_ISSUER, UNREACHABLE_KAFKA, mint_token, serve_app, trust_only
from services.orders.config import Settings as OrdersSettings
from services.transfer.main import orders_token_provider
from services.transfer.transfers.fetcher import (
    HttpOrderFetcher,
    OrderFetchFailed,
    OrderUnavailable,
)
from tests.services.orders.conftest import Orders
from tests.services.orders.test_delivery import ledger
from tests.services.orders.test_transfer_route import cross_border_order
from tests.services.transfer.conftest import (
    KEY,
    TransferApp,
    key_pair,
    open_package,
    settings_for,
)

SERVICE_ID = "svc_transferservicexyz"
SECRET = "scs_transfer-secret"


@pytest.fixture
async def orders(tmp_path: Path) -> AsyncIterator[Orders]:
    """The real orders app, trusting the same test key as the transfer app."""
    settings = OrdersSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=TEST_ISSUER,
        log_json=False,
    )
    async with serve_app("services.orders", settings) as (app, client):
        trust_only(app, KEY)
        yield Orders(app=app, client=client, settings=settings, key=KEY)


class Identity:
    """Identity's token endpoint: checks the client credentials and mints a service token
    with the test key, as identity would for a ``svc_`` client."""

    def __init__(self, audience: str) -> None:
        self.audience = audience
        self.issued = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        if form.get("client_id") != SERVICE_ID or form.get("client_secret") != SECRET:
            return httpx.Response(401, json={"error": "invalid_client"})
        self.issued += 1
        token = mint_token(
            KEY,
            issuer=TEST_ISSUER,
            audience=self.audience,
            subject=SERVICE_ID,
            scopes=[form["scope"]],
            kind="service",
            client_type="server",
            purposes=["cross_border.transfer"],
        )
        return httpx.Response(
            200,
            json={
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 600,
                "scope": form["scope"],
            },
        )


def http_fetcher(orders: Orders, identity: Identity, secret: str = SECRET) -> HttpOrderFetcher:
    provider = ServiceTokenProvider(
        "http://identity/oauth2/token",
        SERVICE_ID,
        secret,
        scope=Scope.SERVICE_CROSS_BORDER_TRANSFER.value,
        client=httpx.AsyncClient(transport=httpx.MockTransport(identity.handler)),
    )
    return HttpOrderFetcher(
        base_url="http://orders",
        token_provider=provider,
        transport=httpx.ASGITransport(app=orders.app),
    )


@pytest.mark.obligation("OB-4-4")
async def test_a_transfer_reads_the_real_orders_app_with_a_service_token(
    transfer: TransferApp, orders: Orders
) -> None:
    identity = Identity(orders.settings.auth_audience)
    transfer.app.state.order_fetcher = http_fetcher(orders, identity)
    subject, order_id = await cross_border_order(orders)
    keys = key_pair()
    recipient = await transfer.register(keys)
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, order_id)
    run = await transfer.run_worker()
    assert run.delivered == 1, await transfer.transfer(requested["id"])

    document = open_package(transfer.endpoint.kept[requested["id"]], keys)
    assert document["fields"]["consignee_name"] == "张**"
    assert document["fields"]["consignee_phone"] == "138****5678"
    assert document["fields"]["postal_code"] == "310012"
    assert set(document["fields"]) == {
        "consignee_name",
        "consignee_phone",
        "address_region",
        "address_detail",
        "postal_code",
    }
    [record] = ledger(await orders.outbox_events(), SERVICE_ID)
    assert record.subject == subject and record.purpose == "cross_border.transfer"
    assert identity.issued == 1


async def test_the_fetcher_meets_orders_404_and_a_refused_token(
    transfer: TransferApp, orders: Orders
) -> None:
    identity = Identity(orders.settings.auth_audience)
    subject, order_id = await cross_border_order(orders)
    fetcher = http_fetcher(orders, identity)
    other, _ = orders.user()
    with pytest.raises(OrderUnavailable):
        await fetcher.fetch(order_id=order_id, subject=other, fields=["consignee_name"])
    fields = await fetcher.fetch(order_id=order_id, subject=subject, fields=["postal_code"])
    assert fields == {"postal_code": "310012"}
    assert identity.issued == 1  # one token for both calls
    with pytest.raises(OrderFetchFailed, match="no service token"):
        await http_fetcher(orders, identity, secret="scs_wrong").fetch(
            order_id=order_id, subject=subject, fields=["postal_code"]
        )


def test_the_app_fetches_service_tokens_when_a_service_client_is_configured(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'transfer.db'}"
    configured = settings_for(
        url,
        identity_token_url="http://identity/oauth2/token",
        service_client_id=SERVICE_ID,
        service_client_secret=SECRET,
    )
    provider = orders_token_provider(configured)
    assert isinstance(provider, ServiceTokenProvider)
    assert provider.scope == "service:cross_border.transfer"
    assert SECRET not in repr(provider)
    assert not isinstance(orders_token_provider(settings_for(url)), ServiceTokenProvider)
    with pytest.raises(ValueError, match="go together"):
        settings_for(url, identity_token_url="http://identity/oauth2/token")
