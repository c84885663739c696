"""A transfer app on a temporary SQLite database that trusts a test signing key, with a
stubbed consent state, a stub orders service, and an overseas endpoint behind httpx's
``MockTransport``; helpers to act as a user or a privacy officer and to make recipients
with their key pairs."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, x25519
from fastapi import FastAPI

from kit.auth import SigningKey, generate_signing_key
from kit.clock import china_today
from kit.testing import (
    TEST_ISSUER,
    UNREACHABLE_KAFKA,
    AppUnderTest,
    serve_app,
    trust_only,
)
from services.transfer.config import Settings
from services.transfer.transfers.delivery import HttpsDeliverer
from services.transfer.transfers.fetcher import OrderUnavailable
from services.transfer.transfers.package import decrypt_package
from services.transfer.transfers.worker import TransferWorker, WorkerRun

ISSUER = TEST_ISSUER
KEY: SigningKey = generate_signing_key()
ENDPOINT = "https://waybills.harbour-freight.example/v1/packages"

#: The categories cross_border.transfer may carry (the catalogue's orders.order fields).
TRANSFERABLE = [
    "user.contact.address",
    "user.contact.address.postal_code",
    "user.contact.address.region",
    "user.contact.phone_number",
    "user.name",
]

#: A narrower allowance: the delivery address only.
ADDRESS_ONLY = ["user.contact.address", "user.contact.address.region"]

#: A whole order as a careless orders service might answer it: the transfer must send
#: only what cross_border.transfer may see, masked.
ORDER_FIELDS: dict[str, Any] = {
    "consignee_name": "张三丰",
    "consignee_phone": "13812345678",
    "address_region": "浙江省杭州市西湖区",
    "address_detail": "文三路90号3幢501室",
    "postal_code": "310012",
    "extra_phones": ["13900001111"],
    "customs_name": "张三丰",
    "customs_id_number": "110101199003071234",
    "invoice_title": "张三丰",
    "invoice_tax_id": "91330100MA2B3C4D5E",
    "invoice_email": "zhang@example.com",
    "remarks": "leave it with the concierge",
}


def new_order_id() -> str:
    return "ord_" + "".join(secrets.choice(string.ascii_letters) for _ in range(20))


@dataclass(frozen=True)
class KeyPair:
    kind: Literal["x25519", "rsa"]
    private_pem: bytes
    public_pem: str


def key_pair(kind: Literal["x25519", "rsa"] = "x25519") -> KeyPair:
    private_key: x25519.X25519PrivateKey | rsa.RSAPrivateKey
    if kind == "x25519":
        private_key = x25519.X25519PrivateKey.generate()
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(kind=kind, private_pem=private_pem, public_pem=public_pem)


def open_package(package: str, keys: KeyPair) -> dict[str, Any]:
    """What the recipient reads: the JWE decrypted with its private key."""
    document: dict[str, Any] = json.loads(decrypt_package(package, keys.private_pem))
    return document


def recipient_body(keys: KeyPair, **overrides: Any) -> dict[str, Any]:
    today = china_today()
    body: dict[str, Any] = {
        "legal_name": "Harbour Freight Pte. Ltd.",
        "contact": "Data Protection Officer, 1 Harbour Road, Singapore 099999",
        "country_region": "Singapore",
        "purpose": "Deliver the goods of cross-border orders to the buyer",
        "processing_method": "Stored encrypted in Singapore, printed on the waybill, deleted "
        "90 days after delivery",
        "data_categories": TRANSFERABLE,
        "how_to_exercise_rights": "Ask the privacy center, or write to the recipient's Data "
        "Protection Officer, quoting the waybill id",
        "dpa_reference": "DPA-2026-017",
        "public_key_pem": keys.public_pem,
        "delivery": "https",
        "endpoint_url": ENDPOINT,
        "legal_basis": {
            "kind": "standard_contract",
            "reference": "SC-FILING-2026-0042",
            "decided_on": str(today - timedelta(days=30)),
            "review_due": str(today + timedelta(days=365)),
        },
        "assessment": {
            "assessed_on": str(today - timedelta(days=10)),
            "result": "passed",
            "notes": "security capability assessed on site",
        },
    }
    body.update(overrides)
    return body


@dataclass
class StubOrders:
    """The orders service's transfer route, as a stub that answers the whole order."""

    orders: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, subject: str, fields: Mapping[str, Any] | None = None) -> str:
        order_id = new_order_id()
        self.orders[order_id] = (subject, dict(fields or ORDER_FIELDS))
        return order_id

    async def fetch(
        self, *, order_id: str, subject: str, fields: Sequence[str]
    ) -> Mapping[str, Any]:
        self.calls.append({"order_id": order_id, "subject": subject, "fields": list(fields)})
        owner, data = self.orders.get(order_id, (None, {}))
        if owner != subject:
            raise OrderUnavailable("no such order for this subject")
        return dict(data)


@dataclass
class Endpoint:
    """An overseas recipient's HTTPS endpoint: answers 503 ``down`` times, then accepts;
    ``lose`` more times it accepts but the response is lost on the way back. It keeps a
    package once per ``Idempotency-Key``, as the agreement asks of recipients."""

    down: int = 0
    lose: int = 0
    requests: list[httpx.Request] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # the JWE received, by transfer

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down > 0:
            self.down -= 1
            return httpx.Response(503, json={"error": "maintenance"})
        key = request.headers["Idempotency-Key"]
        if key not in self.kept:
            self.kept[key] = request.content.decode("ascii")
        if self.lose > 0:
            self.lose -= 1
            raise httpx.ReadTimeout("the response was lost", request=request)
        return httpx.Response(200, json={"received": key})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@dataclass
class TransferApp(AppUnderTest):
    settings: Settings
    orders: StubOrders
    endpoint: Endpoint
    consents: set[tuple[str, str]]

    @property
    def worker(self) -> TransferWorker:
        worker: TransferWorker = self.app.state.transfer_worker
        return worker

    def grant(self, subject: str, recipient_id: str) -> None:
        self.consents.add((subject, recipient_id))

    def withdraw(self, subject: str, recipient_id: str) -> None:
        self.consents.discard((subject, recipient_id))

    async def register(self, keys: KeyPair | None = None, **overrides: Any) -> dict[str, Any]:
        body = recipient_body(keys or key_pair(), **overrides)
        response = await self.client.post("/recipients", json=body, headers=self.privacy_officer())
        assert response.status_code == 201, response.text
        recipient: dict[str, Any] = response.json()
        return recipient

    async def request(
        self,
        recipient_id: str,
        subject: str,
        order_id: str,
        categories: Sequence[str] = tuple(TRANSFERABLE),
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/transfers",
            json={
                "subject": subject,
                "order_id": order_id,
                "recipient_id": recipient_id,
                "categories": list(categories),
            },
            headers=self.privacy_officer(),
        )
        assert response.status_code == 202, response.text
        transfer: dict[str, Any] = response.json()
        return transfer

    async def run_worker(self) -> WorkerRun:
        return await self.worker.run_once()

    async def transfer(self, transfer_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/transfers/{transfer_id}", headers=self.privacy_officer()
        )
        assert response.status_code == 200, response.text
        transfer: dict[str, Any] = response.json()
        return transfer


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": UNREACHABLE_KAFKA,
        "auth_issuer": ISSUER,
        "log_json": False,
        "worker_interval_s": 3600,
        "delivery_backoff_s": 0.001,
        "delivery_round_backoff_s": 0,
    }
    values.update(overrides)
    return Settings(**values)


def install_stubs(
    app: FastAPI, orders: StubOrders, endpoint: Endpoint, consents: set[tuple[str, str]]
) -> None:
    app.state.consent_granted = lambda subject, recipient_id: (subject, recipient_id) in consents
    app.state.order_fetcher = orders
    app.state.deliverer = HttpsDeliverer(transport=endpoint.transport())


@pytest.fixture
async def transfer(tmp_path: Path) -> AsyncIterator[TransferApp]:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'transfer.db'}")
    async with serve_app("services.transfer", settings) as (app, client):
        trust_only(app, KEY)
        # The tests run the worker themselves (``run_worker``), one round at a time; the
        # Kafka test runs it as the app does.
        await app.state.transfer_worker.task.stop()
        orders, endpoint, consents = StubOrders(), Endpoint(), set[tuple[str, str]]()
        install_stubs(app, orders, endpoint, consents)
        yield TransferApp(
            app=app,
            client=client,
            settings=settings,
            key=KEY,
            orders=orders,
            endpoint=endpoint,
            consents=consents,
        )
