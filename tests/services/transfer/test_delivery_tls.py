"""Delivery to recipients behind a private CA or asking for mutual TLS (issue 20, item 10):
a real HTTPS endpoint (uvicorn) whose CA this test made with trustme. Without the settings
the attempt fails and is recorded (nothing is lost); with the recipient's CA bundle, or the
suite-wide client certificate, the package arrives."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi import FastAPI, Request

from kit.testing import on_loopback_port
from services.transfer.config import Settings
from services.transfer.transfers.delivery import HttpsDeliverer
from tests.services.transfer.conftest import TransferApp


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Recipient Private CA")


def recipient_endpoint(received: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/packages")
    async def keep(request: Request) -> dict[str, str]:
        received.append(request.headers["idempotency-key"])
        return {"received": "ok"}

    return app


@asynccontextmanager
async def https_endpoint(
    ca: trustme.CA, directory: Path, *, client_certificates: bool
) -> AsyncIterator[tuple[str, list[str]]]:
    """The recipient's endpoint on a free loopback port, its certificate from ``ca``;
    with ``client_certificates`` it accepts only clients ``ca`` certified (mutual TLS)."""
    server_pem, ca_pem = directory / "server.pem", directory / "ca.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(server_pem)
    ca.cert_pem.write_to_path(ca_pem)
    received: list[str] = []
    tls: dict[str, Any] = {"ssl_certfile": str(server_pem)}
    if client_certificates:
        tls |= {"ssl_ca_certs": str(ca_pem), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    async with on_loopback_port(recipient_endpoint(received), **tls) as port:
        yield f"https://localhost:{port}/packages", received


async def _ready(transfer: TransferApp, endpoint: str) -> tuple[str, str]:
    recipient = await transfer.register(endpoint_url=endpoint)
    subject, _ = transfer.user()
    transfer.grant(subject, recipient["id"])
    requested = await transfer.request(recipient["id"], subject, transfer.orders.add(subject))
    assert requested["status"] == "ready"
    return recipient["id"], requested["id"]


def _deliverer(transfer: TransferApp, **tls: Any) -> None:
    settings = Settings(**{**transfer.settings.model_dump(), **tls})
    transfer.app.state.deliverer = HttpsDeliverer(tls_for=settings.delivery_tls_for)


@pytest.mark.obligation("OB-4-7")
async def test_a_recipient_behind_a_private_ca_is_served_with_its_ca_bundle(
    transfer: TransferApp, ca: trustme.CA, tmp_path: Path
) -> None:
    async with https_endpoint(ca, tmp_path, client_certificates=False) as (url, received):
        recipient_id, transfer_id = await _ready(transfer, url)
        _deliverer(transfer)  # the system store only: the private CA is unknown
        await transfer.run_worker()
        refused = await transfer.transfer(transfer_id)
        assert refused["status"] != "delivered"
        assert {a["error"] for a in refused["attempts"]} == {"ConnectError"}
        assert received == []

        _deliverer(transfer, delivery_tls={recipient_id: {"ca_bundle": tmp_path / "ca.pem"}})
        await transfer.run_worker()
        delivered = await transfer.transfer(transfer_id)
        assert delivered["status"] == "delivered"
        assert delivered["attempts"][-1]["outcome"] == "delivered"
        assert received == [transfer_id]


@pytest.mark.obligation("OB-4-7")
async def test_mutual_tls_with_the_suite_wide_client_certificate(
    transfer: TransferApp, ca: trustme.CA, tmp_path: Path
) -> None:
    client_pem = tmp_path / "client.pem"
    ca.issue_cert("transfer.signature.example").private_key_and_cert_chain_pem.write_to_path(
        client_pem
    )
    async with https_endpoint(ca, tmp_path, client_certificates=True) as (url, received):
        _, transfer_id = await _ready(transfer, url)
        _deliverer(transfer, delivery_ca_bundle=tmp_path / "ca.pem")  # no certificate
        await transfer.run_worker()
        assert (await transfer.transfer(transfer_id))["status"] != "delivered"
        assert received == []

        _deliverer(
            transfer, delivery_ca_bundle=tmp_path / "ca.pem", delivery_client_cert=client_pem
        )
        await transfer.run_worker()
        assert (await transfer.transfer(transfer_id))["status"] == "delivered"
        assert received == [transfer_id]


def test_the_settings_read_per_recipient_tls_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRIVACY_DELIVERY_CA_BUNDLE", "/etc/suite/ca.pem")
    monkeypatch.setenv("TRANSFER_DELIVERY_TLS", '{"rcp_1": {"client_cert": "/etc/rcp1.pem"}}')
    settings = Settings()
    own = settings.delivery_tls_for("rcp_1")
    assert (str(own.ca_bundle), str(own.client_cert)) == ("/etc/suite/ca.pem", "/etc/rcp1.pem")
    other = settings.delivery_tls_for("rcp_2")
    assert (str(other.ca_bundle), other.client_cert) == ("/etc/suite/ca.pem", None)
