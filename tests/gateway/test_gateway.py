"""The gateway's checks, in the order it makes them: route, size, token, rate, scope and
purpose, consent, policy renewal; then proxying (request ids, hop-by-hop headers,
forwarding headers, failures) and accounting."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from gateway.consent_view import policy_agreed
from gateway.policy_facts import CEASED, PUBLISHED, PolicyFacts, facts_handler
from kit.clock import china_today
from kit.events import Event, new_event
from kit.revocation import Revocations, load_revocations, revocation_handler
from tests.gateway.conftest import POINT, SECRETS, GatewayUnderTest, running_gateway


def refusals(reason: str) -> float:
    value = REGISTRY.get_sample_value("gateway_refusals_total", {"reason": reason})
    return value or 0.0


# --------------------------------------------------------------------------- tokens


async def test_a_missing_or_invalid_token_is_401_and_a_wrong_scope_403(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    before = refusals("unauthenticated")
    missing = await gw.client.get("/orders/orders/o1")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    garbage = await gw.client.get("/orders/orders/o1", headers={"Authorization": "Bearer x.y.z"})
    assert garbage.status_code == 401
    assert refusals("unauthenticated") == before + 2

    _, staff = gw.staff(["support:read"])
    wrong = await gw.client.get("/orders/orders/o1", headers=staff)
    assert wrong.status_code == 403 and wrong.json()["scopes"] == ["orders:read"]
    assert orders_upstream.state.seen == []

    public = await gw.client.get("/orders/goods/gds_1")  # public: no token needed
    assert public.status_code == 200


# --------------------------------------------------------------------------- purposes


@pytest.mark.obligation("OB-3-2")
async def test_a_request_naming_another_purpose_is_refused(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    _, courier = gw.partner("partner:logistics", ["logistics.delivery"])
    for spoofed in ("customs.clearance", "marketing.price_drop", "order.query", "nonsense"):
        response = await gw.client.get(
            "/orders/partner/orders/o1", headers={**courier, "X-Purpose": spoofed}
        )
        assert response.status_code == 403, spoofed
        assert response.json()["type"].endswith("purpose-mismatch")
    _, user = gw.user()
    response = await gw.client.get(
        "/orders/orders/o1", headers={**user, "X-Purpose": "security.anti_fraud"}
    )
    assert response.status_code == 403
    assert orders_upstream.state.seen == []

    same = await gw.client.get(
        "/orders/partner/orders/o1", headers={**courier, "X-Purpose": "logistics.delivery"}
    )
    assert same.status_code == 200
    assert orders_upstream.state.seen[-1]["x-purpose"] == "logistics.delivery"


@pytest.mark.obligation("OB-3-2")
async def test_a_partner_only_under_its_registered_purposes(gw: GatewayUnderTest) -> None:
    _, courier = gw.partner("partner:logistics", ["customs.clearance"])
    response = await gw.client.get("/orders/partner/orders/o1", headers=courier)
    assert response.status_code == 403
    assert response.json()["type"].endswith("purpose-not-allowed")
    assert response.json()["purpose"] == "logistics.delivery"


@pytest.mark.obligation("OB-1-1")
async def test_the_purpose_is_forwarded_whatever_the_client_type(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    for client_type in ("app", "web", "mini_program"):
        token = gw.token("acc_abcdefghijklmnopqrst", ["orders:read"], client_type=client_type)
        response = await gw.client.get(
            "/orders/orders/o1", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        assert orders_upstream.state.seen[-1]["x-purpose"] == "order.query"


# --------------------------------------------------------------------------- consent


@pytest.mark.obligation("OB-2G-1")
async def test_location_needs_its_consent_while_ordering_never_does(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    subject, user = gw.user()
    refused = await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
    assert refused.status_code == 403
    body = refused.json()
    assert body["type"].endswith("/consent-required") and body["purpose"] == "location"
    assert orders_upstream.state.seen == []

    # Basic functions go on without the additional consent.
    placed = await gw.client.post("/orders/orders", json={"items": []}, headers=user)
    assert placed.status_code == 201
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200

    gw.consents.add((subject, "location"))
    allowed = await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
    assert allowed.status_code == 200
    gw.consents.discard((subject, "location"))  # withdrawn: refused again at once
    assert (
        await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
    ).status_code == 403


@pytest.mark.obligation("OB-5-3")
async def test_after_a_major_policy_change_only_the_privacy_center_answers(
    tmp_path: Path, orders_upstream: FastAPI
) -> None:
    async with running_gateway(
        tmp_path,
        {"orders": orders_upstream},
        policy_major_sequence=3,
        policy_major_version="2026.2",
    ) as gw:
        subject, user = gw.user()
        gw.agreed[subject] = 2
        stale = await gw.client.get("/orders/orders/o1", headers=user)
        assert stale.status_code == 428
        assert stale.headers["x-policy-renewal-required"] == "2026.2"
        assert 'rel="privacy-policy"' in stale.headers["link"]
        # The privacy center stays reachable (the consent upstream is down here: 502).
        center = await gw.client.get("/consent/policy/agreements/me", headers=user)
        assert center.status_code == 502
        assert center.headers["x-policy-renewal-required"] == "2026.2"
        gw.agreed[subject] = 3
        renewed = await gw.client.get("/orders/orders/o1", headers=user)
        assert renewed.status_code == 200 and "x-policy-renewal-required" not in renewed.headers


@pytest.mark.obligation("OB-5-3")
async def test_a_user_who_never_agreed_must_agree_before_shopping(
    tmp_path: Path, orders_upstream: FastAPI
) -> None:
    async with running_gateway(
        tmp_path, {"orders": orders_upstream}, policy_major_sequence=1, policy_major_version="1"
    ) as gw:
        subject, user = gw.user()  # no agreement at all
        refused = await gw.client.get("/orders/orders/o1", headers=user)
        assert refused.status_code == 428
        assert refused.headers["x-policy-renewal-required"] == "1"
        assert orders_upstream.state.seen == []
        gw.agreed[subject] = 1
        assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200


@pytest.mark.obligation("OB-5-3")
async def test_while_the_consent_view_catches_up_the_gateway_fails_closed_with_503(
    tmp_path: Path, orders_upstream: FastAPI
) -> None:
    async with running_gateway(
        tmp_path, {"orders": orders_upstream}, policy_major_sequence=1, policy_major_version="1"
    ) as gw:
        # The real view, over a broker it cannot reach: it never catches up here.
        gw.app.state.policy_sequence_agreed = policy_agreed(gw.app.state.consent_view)
        _, user = gw.user()
        waiting = await gw.client.get("/orders/orders/o1", headers=user)
        assert waiting.status_code == 503
        assert waiting.json()["type"].endswith("/consent-view-not-ready")
        assert int(waiting.headers["retry-after"]) >= 1
        assert orders_upstream.state.seen == []


# --------------------------------------------------------------------------- proxying


async def test_request_ids_forwarding_headers_and_hop_by_hop_headers(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    response = await gw.client.get(
        "/orders/goods/gds_1?x=1",
        headers={
            "X-Request-ID": "req-gw-1",
            "Connection": "x-client-private",
            "X-Client-Private": "secret",
            "Keep-Alive": "timeout=1",
            "X-Forwarded-For": "198.51.100.1",
            "X-Kept-In": "yes",
        },
    )
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["req-gw-1"]
    assert response.headers["x-kept"] == "yes"
    for gone in ("x-upstream-private", "keep-alive"):
        assert gone not in response.headers
    seen = orders_upstream.state.seen[-1]
    assert seen["x-request-id"] == "req-gw-1"
    # The chain the client sent is replaced by the address the gateway saw.
    assert seen["x-forwarded-for"] == "203.0.113.7"
    assert seen["x-purpose"] == "browse" and seen["x-kept-in"] == "yes"
    for gone in ("x-client-private", "keep-alive"):
        assert gone not in seen


async def test_an_upstream_down_is_502_and_a_slow_one_504(
    tmp_path: Path, orders_upstream: FastAPI
) -> None:
    async with running_gateway(tmp_path, {"orders": orders_upstream}, upstream_timeout_s=0.3) as gw:
        down = await gw.client.get("/identity/.well-known/jwks.json")
        assert down.status_code == 502
        assert down.headers["content-type"] == "application/problem+json"
        slow = await gw.client.get("/orders/goods")
        assert slow.status_code == 504
        assert slow.headers["content-type"] == "application/problem+json"


async def test_rate_limit_and_body_size(tmp_path: Path, orders_upstream: FastAPI) -> None:
    async with running_gateway(
        tmp_path,
        {"orders": orders_upstream},
        rate_limit_per_s=0.5,
        rate_limit_burst=2,
        max_body_bytes=64,
    ) as gw:
        _, user = gw.user()
        big = await gw.client.post("/orders/orders", content=b"x" * 65, headers=user)
        assert big.status_code == 413
        codes = [(await gw.client.get("/orders/goods/g", headers=user)).status_code for _ in "abc"]
        assert codes == [200, 200, 429]
        limited = await gw.client.get("/orders/goods/g", headers=user)
        assert int(limited.headers["retry-after"]) >= 1


# --------------------------------------------------------------------------- accounting


@pytest.mark.obligation("OB-3-1")
async def test_access_events_hold_categories_and_no_personal_data(gw: GatewayUnderTest) -> None:
    subject, user = gw.user()
    await gw.client.get("/orders/orders/o1", headers=user)
    await gw.client.get("/orders/goods/g", headers=user)  # no resource: no event
    events = await gw.outbox_events()
    assert len(events) == 1
    [event] = events
    assert event.subject == subject and event.purpose == "order.query"
    assert event.type == "com.signature.gateway.personal_data.read.v1"
    assert event.data == {"actor": subject, "resource": "orders.order", "action": "read"}
    assert "user.government_id.national_identification_number" in event.categories
    payload = json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in payload


async def learn_revocation(gw: GatewayUnderTest, event: Event) -> None:
    """Feed one event to the gateway's revocation consumer handler (kit.revocation)."""
    handle = revocation_handler(gw.app.state.revocations, keep_s=gw.settings.revocation_keep_s)
    async with gw.app.state.context.database.session() as session:
        await handle(session, event)


async def learn(gw: GatewayUnderTest, event: Event) -> None:
    """Feed one privacy-center event to the gateway's consumer handler."""
    facts: PolicyFacts = gw.app.state.policy_facts
    async with gw.app.state.context.database.session() as session:
        await facts_handler(facts)(session, event)


@pytest.mark.obligation("OB-5-3")
async def test_a_major_version_learnt_from_the_privacy_center_asks_for_renewal(
    gw: GatewayUnderTest,
) -> None:
    subject, user = gw.user()
    gw.agreed[subject] = 1
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200
    await learn(
        gw,
        new_event(
            source="/consent",
            type=PUBLISHED,
            subject="policy",
            purpose="account",
            data={
                "version": "2027.1",
                "sequence": 2,
                "major": True,
                "kinds": ["user_rights"],
                "effective_date": str(china_today()),
                "reduces_rights": False,
            },
        ),
    )
    stale = await gw.client.get("/orders/orders/o1", headers=user)
    assert stale.status_code == 428
    assert stale.headers["x-policy-renewal-required"] == "2027.1"
    gw.agreed[subject] = 2
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200


@pytest.mark.obligation("OB-2J-1")
async def test_a_ceased_purpose_is_refused_with_410(gw: GatewayUnderTest) -> None:
    subject, user = gw.user()
    gw.consents.add((subject, "location"))
    assert (
        await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
    ).status_code == 200
    await learn(
        gw,
        new_event(
            source="/consent",
            type=CEASED,
            subject="cessation_abcdef",
            purpose="location",
            data={
                "cessation_id": "cessation_abcdef",
                "purpose": "location",
                "effective_date": str(china_today()),
                "deletion_due": str(china_today()),
            },
        ),
    )
    refused = await gw.client.post("/orders/location/nearby", headers=user, json=POINT)
    assert refused.status_code == 410
    assert refused.json()["purpose"] == "location"
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200


@pytest.mark.obligation("OB-4-7")
@pytest.mark.parametrize(
    "event_type",
    [
        "com.signature.identity.account.closed.v1",
        "com.signature.identity.partner.revoked.v1",
        "com.signature.identity.service_client.revoked.v1",
    ],
)
async def test_tokens_of_a_closed_account_or_revoked_partner_are_refused_at_once(
    gw: GatewayUnderTest, event_type: str
) -> None:
    subject, user = gw.user()
    other, still_valid = gw.user()
    assert (await gw.client.get("/orders/orders/o1", headers=user)).status_code == 200
    forged = new_event(source="/orders", type=event_type, subject=other, purpose="account")
    await learn_revocation(gw, forged)  # only identity revokes
    await learn_revocation(
        gw, new_event(source="/identity", type=event_type, subject=subject, purpose="account")
    )
    refused = await gw.client.get("/orders/orders/o1", headers=user)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert (await gw.client.get("/orders/orders/o1", headers=still_valid)).status_code == 200
    # A restart remembers it: the revocations are reloaded from the app's own table.
    reloaded = Revocations()
    await load_revocations(gw.app.state.context.database, reloaded)
    assert reloaded.is_revoked(subject) and not reloaded.is_revoked(other)


async def test_the_gateways_own_routes_stay_its_own_beside_the_hot_path(
    gw: GatewayUnderTest, orders_upstream: FastAPI
) -> None:
    upstream_calls = len(orders_upstream.state.seen)
    health = await gw.client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # readiness, metrics and OpenAPI are the operations port's (tests/security/test_ops_port.py)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.app.state.ops_port}") as ops:
        schema = await ops.get("/openapi.json")
        assert schema.status_code == 200 and schema.json()["info"]["title"] == "Gateway"
        metrics = await ops.get("/metrics")
        assert metrics.status_code == 200 and "gateway_refusals_total" in metrics.text
    unknown = await gw.client.get("/nowhere")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert unknown.json()["instance"] == "/nowhere"
    assert len(orders_upstream.state.seen) == upstream_calls  # none of them went upstream
