"""A stand-in payment provider for development and tests, shaped like WeChat Pay v3:

    uvicorn --factory deploy.payment_provider.main:create_app --port 8005

- ``POST /v3/payments``: the shop creates a payment (body signed with the shop's key,
  ``kit.payment_signature``); answers the payment reference the app opens the wallet
  with. Idempotent by order number.
- ``POST /v3/payments/{reference}/pay``: stands for the buyer confirming in the wallet app;
  the provider then notifies the shop (below). Refused once the payment expired.
- ``POST /v3/refunds``: the shop asks for a refund (signed); the refund notification follows.
- Notifications are signed with the provider's own key (``Payment-*`` headers over
  ``timestamp\\nnonce\\nbody\\n``) and sent to the ``notify_url`` the shop gave, re-signed
  and retried with exponential backoff until a 2xx answers.
- ``GET /public-key``: the key to register at the shop; ``PUT /merchant``: the shop's
  public key, as a merchant uploads it in a real provider's console.
- ``GET /received``: every request the shop sent, as received (what a test inspects);
  ``GET /deliveries``: every notification attempt and its answer.

Settings (environment): ``PAYMENT_PROVIDER_KEY_FILE`` (its Ed25519 private key, PEM; made
at first start when missing), ``PAYMENT_PROVIDER_SHOP_KEY_FILE`` (the shop's public key,
PEM; written by ``PUT /merchant`` too), ``PAYMENT_PROVIDER_RETRY_BASE_S`` (0.5),
``PAYMENT_PROVIDER_RETRY_MAX_S`` (30). It keeps payments in memory only: a stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kit.payment_signature import (
    NONCE_HEADER,
    SERIAL_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PrivateKey,
    PublicKey,
    load_private_key,
    load_public_key,
    new_ed25519_key,
    private_key_pem,
    public_key_pem,
    serial_of,
    sign_headers,
    verify,
)

logger = logging.getLogger("payment_provider")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_PROVIDER_", extra="ignore")

    key_file: Path = Path(".run/data/payment-provider/provider-key.pem")
    shop_key_file: Path = Path(".run/data/payment-provider/shop-public-key.pem")
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: how far the shop's request timestamp may be from now
    window_s: int = 300


class Merchant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop_public_key: str = Field(min_length=1, max_length=2000)


@dataclass
class StandInPayment:
    reference: str
    order_id: str
    amount: str
    currency: str
    expires_at: datetime
    notify_url: str
    notification_id: str | None = None


@dataclass
class State:
    settings: Settings
    key: PrivateKey
    shop_key: PublicKey | None
    client: httpx.AsyncClient
    payments: dict[str, StandInPayment] = field(default_factory=dict)  # by reference
    by_order: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)  # refund id -> reference
    received: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def own_key(path: Path) -> PrivateKey:
    """The provider's key pair: read, or made once and kept (mode 600)."""
    if path.exists():
        return load_private_key(path.read_text())
    key = new_ed25519_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(private_key_pem(key))
    path.chmod(0o600)
    return key


def now_utc() -> datetime:
    return datetime.now(UTC)


async def signed_by_shop(request: Request, state: State) -> dict[str, Any]:
    """The request's JSON once its signature verifies with the shop's key (401 otherwise)."""
    body = await request.body()
    headers = request.headers
    stamp = headers.get(TIMESTAMP_HEADER, "")
    if state.shop_key is None:
        raise HTTPException(401, "no merchant key registered")
    if headers.get(SERIAL_HEADER) != serial_of(state.shop_key):
        raise HTTPException(401, "unknown merchant key")
    if not stamp.isdigit() or abs(now_utc().timestamp() - int(stamp)) > state.settings.window_s:
        raise HTTPException(401, "stale request")
    nonce, signature = headers.get(NONCE_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not verify(state.shop_key, stamp, nonce, body, signature):
        raise HTTPException(401, "bad signature")
    payload: dict[str, Any] = json.loads(body)
    state.received.append(
        {"path": request.url.path, "headers": sorted(headers.keys()), "body": payload}
    )
    return payload


async def notify(state: State, url: str, notification: dict[str, Any]) -> None:
    """Send until a 2xx answers, re-signed each time, backing off exponentially."""
    body = json.dumps(notification, separators=(",", ":")).encode()
    delay = state.settings.retry_base_s
    attempt = 0
    while True:
        attempt += 1
        headers = {"Content-Type": "application/json", **sign_headers(state.key, body)}
        try:
            response = await state.client.post(url, content=body, headers=headers)
            status: int | None = response.status_code
        except httpx.HTTPError as exc:
            status = None
            logger.info("notification %s: %s", notification["id"], exc)
        state.deliveries.append(
            {"notification_id": notification["id"], "attempt": attempt, "status": status}
        )
        if status is not None and 200 <= status < 300:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, state.settings.retry_max_s)


def send_later(state: State, url: str, notification: dict[str, Any]) -> None:
    task = asyncio.create_task(notify(state, url, notification))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


router = APIRouter()


def state_of(request: Request) -> State:
    state: State = request.app.state.provider
    return state


@router.get("/healthz")
@router.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@router.get("/public-key")
async def public_key(request: Request) -> dict[str, str]:
    key = state_of(request).key
    return {"public_key": public_key_pem(key), "serial": serial_of(key)}


@router.put("/merchant", status_code=204)
async def merchant(body: Merchant, request: Request) -> Response:
    state = state_of(request)
    try:
        state.shop_key = load_public_key(body.shop_public_key)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    state.settings.shop_key_file.parent.mkdir(parents=True, exist_ok=True)
    state.settings.shop_key_file.write_text(body.shop_public_key)
    return Response(status_code=204)


@router.post("/v3/payments")
async def create_payment(request: Request) -> dict[str, str]:
    state = state_of(request)
    payload = await signed_by_shop(request, state)
    order_id = str(payload["order_id"])
    if order_id in state.by_order:
        return {"provider_reference": state.by_order[order_id]}
    reference = "wx" + secrets.token_hex(14)
    state.payments[reference] = StandInPayment(
        reference=reference,
        order_id=order_id,
        amount=str(payload["amount_payable"]),
        currency=str(payload["currency"]),
        expires_at=datetime.fromisoformat(str(payload["expires_at"])),
        notify_url=str(payload["notify_url"]),
    )
    state.by_order[order_id] = reference
    return {"provider_reference": reference}


@router.post("/v3/payments/{reference}/pay", status_code=202)
async def pay(reference: str, request: Request) -> dict[str, str]:
    """The buyer confirmed in the wallet: the provider notifies the shop."""
    state = state_of(request)
    payment = state.payments.get(reference)
    if payment is None:
        raise HTTPException(404, "no such payment")
    if payment.notification_id is not None:
        return {"notification_id": payment.notification_id}
    if payment.expires_at <= now_utc():
        raise HTTPException(409, "the payment expired")
    payment.notification_id = "ntf" + secrets.token_hex(12)
    send_later(
        state,
        payment.notify_url,
        {
            "id": payment.notification_id,
            "event_type": "payment.succeeded",
            "order_id": payment.order_id,
            "provider_reference": payment.reference,
            "amount": {"total": payment.amount, "currency": payment.currency},
            "occurred_at": now_utc().isoformat(),
        },
    )
    return {"notification_id": payment.notification_id}


@router.post("/v3/refunds")
async def refund(request: Request) -> dict[str, str]:
    state = state_of(request)
    payload = await signed_by_shop(request, state)
    refund_id = str(payload["refund_id"])
    if refund_id in state.refunds:
        return {"refund_reference": state.refunds[refund_id]}
    payment = state.payments.get(str(payload["provider_reference"]))
    if payment is None or payment.notification_id is None:
        raise HTTPException(404, "no such paid payment")
    if Decimal(str(payload["amount"])) != Decimal(payment.amount):
        raise HTTPException(422, "a refund here is of the whole amount")
    reference = "rf" + secrets.token_hex(14)
    state.refunds[refund_id] = reference
    send_later(
        state,
        str(payload["notify_url"]),
        {
            "id": "ntf" + secrets.token_hex(12),
            "event_type": "refund.succeeded",
            "order_id": payment.order_id,
            "provider_reference": payment.reference,
            "refund_id": refund_id,
            "amount": {"total": payment.amount, "currency": payment.currency},
            "occurred_at": now_utc().isoformat(),
        },
    )
    return {"refund_reference": reference}


@router.get("/received")
async def received(request: Request) -> list[dict[str, Any]]:
    return state_of(request).received


@router.get("/deliveries")
async def deliveries(request: Request) -> list[dict[str, Any]]:
    return state_of(request).deliveries


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shop_file = settings.shop_key_file
        shop_key = load_public_key(shop_file.read_text()) if shop_file.exists() else None
        async with httpx.AsyncClient(timeout=10.0) as client:
            app.state.provider = State(settings, own_key(settings.key_file), shop_key, client)
            yield
            for task in list(app.state.provider.tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="Stand-in payment provider", lifespan=lifespan)
    app.include_router(router)
    return app
