"""The access export (OB-R-1, a copy of one's data): one JSON document gathered from every
service over HTTP with a service token, never the user's own; a service that fails is
recorded as an error in the document instead of failing the export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from kit.testing import bearer
from services.consent.rights.export import RightsExporter
from tests.services.consent.conftest import Consent
from tests.services.consent.test_rights import events_of_type, file, new_user

SERVICE_TOKEN = "service-token-for-rights-access"
URLS = {
    "identity": "http://identity.test",
    "orders": "http://orders.test",
    "transfer": "http://transfer.test",
    "consent": "http://consent.test",
}
ORDERS_DATA = {"orders": [{"order_id": "ord_1", "consignee_name": "王小明"}]}


class Services:
    """What the participant services answer, and the requests they received."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        host = request.url.host
        if host == "orders.test":
            return httpx.Response(200, json=ORDERS_DATA)
        if host == "identity.test":
            return httpx.Response(500, text="Traceback: secret internals 13912345678")
        if host == "transfer.test":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, text="<html>not json</html>")


async def service_token() -> str:
    return SERVICE_TOKEN


def wire(consent: Consent, services: Services, **options: Any) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=httpx.MockTransport(services))
    consent.app.state.rights_exporter = RightsExporter(
        client=client,
        token_provider=options.pop("token_provider", service_token),
        service_urls=options.pop("service_urls", URLS),
        timeout_s=2.0,
    )
    return client


@pytest.mark.obligation("OB-R-1")
async def test_the_export_gathers_every_service_and_records_failures(consent: Consent) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="access")
    services = Services()
    async with wire(consent, services):
        response = await consent.client.get(
            f"/rights-requests/{filed['id']}/export", headers=headers
        )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["subject"] == subject
    assert datetime.fromisoformat(document["generated_at"]).tzinfo is not None
    assert document["services"] == {
        "consent": {"status": "error", "error": "answer is not JSON"},
        "identity": {"status": "error", "error": "answered HTTP 500"},
        "orders": {"status": "ok", "data": ORDERS_DATA},
        "transfer": {"status": "error", "error": "timed out after 2s"},
    }
    assert "13912345678" not in response.text  # a failing service's body is not copied

    # Each service was asked for this subject's data, with the service token; the user's
    # own token went nowhere.
    user_token = headers["Authorization"].removeprefix("Bearer ")
    assert sorted(str(r.url) for r in services.seen) == sorted(
        f"{url}/rights/export/{subject}" for url in URLS.values()
    )
    for request in services.seen:
        assert request.headers["authorization"] == f"Bearer {SERVICE_TOKEN}"
        assert user_token not in json.dumps(dict(request.headers))

    (exported,) = await events_of_type(consent, "com.signature.consent.rights.exported.v1")
    assert exported.subject == subject
    assert exported.data == {
        "request_id": filed["id"],
        "services": {"consent": "error", "identity": "error", "orders": "ok", "transfer": "error"},
    }


@pytest.mark.obligation("OB-R-1")
async def test_without_a_service_token_every_service_is_an_error(consent: Consent) -> None:
    async def no_token() -> str:
        raise RuntimeError("identity is down")

    services = Services()
    exporter = RightsExporter(
        client=httpx.AsyncClient(transport=httpx.MockTransport(services)),
        token_provider=no_token,
        service_urls={"orders": URLS["orders"]},
    )
    async with exporter.client:
        document = await exporter.gather(
            subject="acc_1", services=["orders", "unknown"], generated_at=datetime.now(UTC)
        )
    assert services.seen == []
    assert {name: part.status for name, part in document.services.items()} == {
        "orders": "error",
        "unknown": "error",
    }


@pytest.mark.obligation("OB-R-1")
async def test_a_service_without_a_url_is_an_error_not_a_failed_export(consent: Consent) -> None:
    services = Services()
    exporter = RightsExporter(
        client=httpx.AsyncClient(transport=httpx.MockTransport(services)),
        token_provider=service_token,
        service_urls={"orders": URLS["orders"] + "/"},
    )
    async with exporter.client:
        document = await exporter.gather(
            subject="acc_1", services=["orders", "identity"], generated_at=datetime.now(UTC)
        )
    assert document.model_dump(mode="json")["services"] == {
        "orders": {"status": "ok", "data": ORDERS_DATA},
        "identity": {"status": "error", "error": "no URL configured for this service"},
    }
    assert [str(r.url) for r in services.seen] == ["http://orders.test/rights/export/acc_1"]


@pytest.mark.obligation("OB-R-1")
async def test_only_the_owner_of_an_access_request_gets_an_export(consent: Consent) -> None:
    _, owner = new_user(consent)
    _, stranger = new_user(consent)
    access = await file(consent, owner, kind="access")
    deletion = await file(consent, owner, kind="deletion")
    services = Services()
    async with wire(consent, services):
        for headers, request_id, status in (
            (stranger, access["id"], 404),
            (owner, deletion["id"], 409),
            (bearer(consent.token("acc_nobody", [])), access["id"], 403),
        ):
            response = await consent.client.get(
                f"/rights-requests/{request_id}/export", headers=headers
            )
            assert response.status_code == status, response.text
    assert services.seen == []


@pytest.mark.obligation("OB-R-1")
async def test_the_export_says_so_while_it_is_not_wired(consent: Consent) -> None:
    _, owner = new_user(consent)
    access = await file(consent, owner, kind="access")
    response = await consent.client.get(f"/rights-requests/{access['id']}/export", headers=owner)
    assert response.status_code == 503
    assert response.json()["type"].endswith("export-not-configured")
