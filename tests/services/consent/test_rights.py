"""Rights requests (OB-R-1): a user files an access, correction, deletion or withdraw-all
request; every service holding their data answers; the request completes only when all
have answered, and shows overdue (naming who is late) once the deadline has passed.
Corrections never reach an event; nobody but the owner sees a request."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlmodel import col

from kit.auth import Scope
from kit.clock import CHINA_TZ
from kit.events import Event, new_event
from kit.models import utcnow
from kit.testing import bearer
from services.consent.rights import service
from services.consent.rights.consumers import _withdraw_all, rights_handler
from services.consent.rights.models import RightsAnswer, RightsRequest
from tests.services.consent.conftest import Consent

PARTICIPANTS = ["consent", "identity", "orders", "transfer"]
PHONE = "13912345678"
NAME = "王小明"
ADDRESS = "朝阳区建国路88号3单元1201"
CORRECTIONS = {
    "orders": {"order_id": "ord_1", "consignee_phone": PHONE, "consignee_name": NAME},
    "identity": {"address_detail": ADDRESS},
}


def new_user(consent: Consent) -> tuple[str, dict[str, str]]:
    return consent.user()


async def file(consent: Consent, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await consent.client.post("/rights-requests", json=body, headers=headers)
    assert response.status_code == 202, response.text
    filed: dict[str, Any] = response.json()
    return filed


def answer_event(
    service_name: str, subject: str, request_id: str, outcome: str = "done", **data: Any
) -> Event:
    return new_event(
        source=f"/{service_name}",
        type=service.completion_type(service_name),
        subject=subject,
        purpose="rights.access",
        data={"request_id": request_id, "outcome": outcome, **data},
    )


async def handle(consent: Consent, event: Event) -> None:
    """Run the ``consent.rights`` consumer's handler on one event, as the consumer does."""
    handler = rights_handler(consent.context, withdraw_all=None)
    async with consent.context.database.session() as session:
        await handler(session, event)


async def events_of_type(consent: Consent, event_type: str) -> list[Event]:
    return [event for event in await consent.outbox_events() if event.type == event_type]


async def move_deadline_to_the_past(consent: Consent, request_id: str) -> None:
    async with consent.context.database.session() as session:
        await session.execute(
            update(RightsRequest)
            .where(col(RightsRequest.id) == request_id)
            .values(deadline=utcnow() - timedelta(minutes=1))
        )


# --------------------------------------------------------------------------- filing


@pytest.mark.parametrize("kind", ["access", "deletion", "withdraw_all"])
@pytest.mark.obligation("OB-R-1")
async def test_a_user_files_a_request_every_service_must_answer(
    consent: Consent, kind: str
) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind=kind)

    assert filed["kind"] == kind
    assert filed["status"] == "open"
    assert filed["id"].startswith("rr_")
    assert [(p["service"], p["status"]) for p in filed["participants"]] == [
        (name, "pending") for name in PARTICIPANTS
    ]
    filed_at = datetime.fromisoformat(filed["filed_at"])
    deadline = datetime.fromisoformat(filed["deadline"])
    assert timedelta(days=19) <= deadline - filed_at <= timedelta(days=24)  # 15 working days
    assert date.fromisoformat(filed["due_date"]).weekday() < 5
    assert filed["overdue_services"] == []

    mine = (await consent.client.get("/rights-requests/me", headers=headers)).json()
    assert [(r["id"], r["status"]) for r in mine] == [(filed["id"], "open")]

    (requested,) = await events_of_type(consent, service.REQUESTED)
    assert requested.subject == subject
    assert requested.purpose == "rights.access"
    assert requested.data == {
        "request_id": filed["id"],
        "kind": kind,
        "deadline": deadline.astimezone(UTC).isoformat(),
        "participants": consent.settings.rights_participants,
    }


@pytest.mark.obligation("OB-R-1")
async def test_a_correction_goes_to_the_services_it_names_and_its_values_stay_out_of_events(
    consent: Consent,
) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="correction", corrections=CORRECTIONS)

    assert filed["has_corrections"] is True
    assert [p["service"] for p in filed["participants"]] == ["identity", "orders"]
    detail = (await consent.client.get(f"/rights-requests/{filed['id']}", headers=headers)).json()
    assert detail["corrections"] == CORRECTIONS  # the owner sees what they asked for

    (requested,) = await events_of_type(consent, service.REQUESTED)
    assert requested.data["has_corrections"] is True
    assert "corrections" not in requested.data
    outbox = b"".join(event.to_json_bytes() for event in await consent.outbox_events())
    for value in (PHONE, NAME, ADDRESS, "consignee_phone"):
        assert value.encode() not in outbox
        assert value.encode("unicode_escape") not in outbox

    # At rest the corrections are ciphertext under the subject's key.
    async with consent.context.database.session() as session:
        stored = await session.scalar(
            text("SELECT corrections_encrypted FROM rights_request WHERE id = :id"),
            {"id": filed["id"]},
        )
    assert stored.startswith("v1.")
    assert PHONE not in stored and NAME not in stored

    # A service fetches its own part through the privacy officer's route, and the read
    # lands in the processing ledger.
    officer = consent.privacy_officer()
    orders_part = await consent.client.get(
        f"/rights-requests/{filed['id']}/corrections/orders", headers=officer
    )
    assert orders_part.status_code == 200, orders_part.text
    assert orders_part.json() == {
        "request_id": filed["id"],
        "service": "orders",
        "corrections": CORRECTIONS["orders"],
    }
    transfer_part = await consent.client.get(
        f"/rights-requests/{filed['id']}/corrections/transfer", headers=officer
    )
    assert transfer_part.status_code == 404
    user_try = await consent.client.get(
        f"/rights-requests/{filed['id']}/corrections/orders", headers=headers
    )
    assert user_try.status_code == 403
    reads = await events_of_type(consent, "com.signature.consent.personal_data.read.v1")
    assert [(e.subject, e.purpose) for e in reads] == [(subject, "rights.access")]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "correction"}, 422),
        ({"kind": "correction", "corrections": {}}, 422),
        ({"kind": "correction", "corrections": {"orders": {}}}, 422),
        ({"kind": "deletion", "corrections": {"orders": {"x": 1}}}, 422),
        ({"kind": "correction", "corrections": {"marketing_db": {"x": 1}}}, 422),
        ({"kind": "forget_me"}, 422),
        ({"kind": "access", "urgent": True}, 422),
        ({"kind": "correction", "corrections": {"orders": {"note": "x" * 20_000}}}, 422),
    ],
)
@pytest.mark.obligation("OB-R-1")
async def test_a_malformed_request_is_refused_and_nothing_is_filed(
    consent: Consent, body: dict[str, Any], status: int
) -> None:
    _, headers = new_user(consent)
    response = await consent.client.post("/rights-requests", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await consent.client.get("/rights-requests/me", headers=headers)).json() == []
    assert await events_of_type(consent, service.REQUESTED) == []


@pytest.mark.obligation("OB-R-1")
async def test_filing_needs_a_user_token_with_consent_write(consent: Consent) -> None:
    assert (
        await consent.client.post("/rights-requests", json={"kind": "access"})
    ).status_code == 401
    read_only = bearer(consent.token("acc_readonly", [Scope.CONSENT_READ]))
    response = await consent.client.post(
        "/rights-requests", json={"kind": "access"}, headers=read_only
    )
    assert response.status_code == 403


@pytest.mark.obligation("OB-R-1")
async def test_another_user_cannot_see_a_request(consent: Consent) -> None:
    _, owner = new_user(consent)
    _, stranger = new_user(consent)
    filed = await file(consent, owner, kind="correction", corrections=CORRECTIONS)

    for path in (f"/rights-requests/{filed['id']}", f"/rights-requests/{filed['id']}/export"):
        response = await consent.client.get(path, headers=stranger)
        assert response.status_code == 404, path
        assert PHONE not in response.text
    assert (await consent.client.get("/rights-requests/no_such", headers=owner)).status_code == 404
    assert (await consent.client.get("/rights-requests/me", headers=stranger)).json() == []


# --------------------------------------------------------------------------- answers


@pytest.mark.obligation("OB-R-1")
async def test_a_request_completes_only_when_every_participant_answered(consent: Consent) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="deletion")
    request_id = filed["id"]

    await handle(
        consent,
        answer_event(
            "orders",
            subject,
            request_id,
            "partial",
            deleted=["user.contact.phone_number"],
            anonymised=["user.name"],
            kept=[
                {
                    "category": "user.behavior.purchase_history",
                    "legal_basis": "E-Commerce Law art. 31",
                    "until": "2029-12-01T00:00:00+00:00",
                    "retention": "transaction_record",
                }
            ],
            reason="transaction records are kept 3 years from completion",
        ),
    )
    await handle(
        consent, answer_event("identity", subject, request_id, "done", deleted=["user.name"])
    )
    view = (await consent.client.get(f"/rights-requests/{request_id}", headers=headers)).json()
    assert view["status"] == "open"
    assert {p["service"]: p["status"] for p in view["participants"]} == {
        "consent": "pending",
        "identity": "done",
        "orders": "partial",
        "transfer": "pending",
    }
    orders = next(p for p in view["participants"] if p["service"] == "orders")
    assert orders["deleted"] == ["user.contact.phone_number"]
    assert orders["anonymised"] == ["user.name"]
    assert orders["kept"] == [
        {
            "category": "user.behavior.purchase_history",
            "legal_basis": "E-Commerce Law art. 31",
            "until": "2029-12-01",
            "retention": "transaction_record",
        }
    ]

    # The consent service answers its own part from its rights.requested event.
    (requested,) = await events_of_type(consent, service.REQUESTED)
    await handle(consent, requested)
    (own,) = await events_of_type(consent, service.completion_type("consent"))
    await handle(consent, own)
    await handle(consent, answer_event("transfer", subject, request_id, "refused", reason="none"))
    view = (await consent.client.get(f"/rights-requests/{request_id}", headers=headers)).json()
    assert view["status"] == "completed"
    assert view["completed_at"] is not None
    assert {p["service"]: p["status"] for p in view["participants"]} == {
        "consent": "partial",
        "identity": "done",
        "orders": "partial",
        "transfer": "refused",
    }
    (fulfilled,) = await events_of_type(consent, service.FULFILLED)
    assert fulfilled.data == {
        "request_id": request_id,
        "kind": "deletion",
        "outcomes": {
            "consent": "partial",
            "identity": "done",
            "orders": "partial",
            "transfer": "refused",
        },
    }

    # A second answer from a service that already answered changes nothing.
    await handle(
        consent, answer_event("orders", subject, request_id, "done", deleted=["user.name"])
    )
    again = (await consent.client.get(f"/rights-requests/{request_id}", headers=headers)).json()
    assert again == view
    assert len(await events_of_type(consent, service.FULFILLED)) == 1


@pytest.mark.obligation("OB-R-1")
async def test_the_consent_service_keeps_agreements_and_receipts_as_evidence(
    consent: Consent,
) -> None:
    _, headers = new_user(consent)
    filed = await file(consent, headers, kind="deletion")
    (requested,) = await events_of_type(consent, service.REQUESTED)
    await handle(consent, requested)
    await handle(consent, requested)  # the same request again: still one answer
    answers = await events_of_type(consent, service.completion_type("consent"))
    assert len(answers) == 1
    await handle(consent, answers[0])

    view = (await consent.client.get(f"/rights-requests/{filed['id']}", headers=headers)).json()
    consent_part = next(p for p in view["participants"] if p["service"] == "consent")
    retention = consent.context.catalogue.retention_period("consent_receipt")
    assert consent_part["status"] == "partial"
    assert consent_part["deleted"] == []
    (kept,) = consent_part["kept"]
    assert kept["retention"] == "consent_receipt"
    assert kept["legal_basis"] == retention.legal_basis
    assert date.fromisoformat(kept["until"]) == retention.expires_at(utcnow()).date()
    assert "receipts" in consent_part["reason"]


@pytest.mark.obligation("OB-R-1")
async def test_withdraw_all_withdraws_every_consent_through_the_consents_domain(
    consent: Consent,
) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="withdraw_all")
    (requested,) = await events_of_type(consent, service.REQUESTED)
    withdrawn: list[str] = []

    async def withdraw_all(session: Any, who: str) -> int:
        withdrawn.append(who)
        return 3

    handler = rights_handler(consent.context, withdraw_all=withdraw_all)
    async with consent.context.database.session() as session:
        await handler(session, requested)
    assert withdrawn == [subject]
    (answer,) = await events_of_type(consent, service.completion_type("consent"))
    assert answer.data["outcome"] == "done"
    assert answer.data["kept"][0]["retention"] == "consent_receipt"
    await handle(consent, answer)
    view = (await consent.client.get(f"/rights-requests/{filed['id']}", headers=headers)).json()
    assert next(p for p in view["participants"] if p["service"] == "consent")["status"] == "done"


@pytest.mark.obligation("OB-R-1")
async def test_withdraw_all_is_refused_while_the_consents_domain_cannot_do_it(
    consent: Consent,
) -> None:
    _, headers = new_user(consent)
    filed = await file(consent, headers, kind="withdraw_all")
    (requested,) = await events_of_type(consent, service.REQUESTED)
    await handle(consent, requested)  # the consumer as wired today
    (answer,) = await events_of_type(consent, service.completion_type("consent"))
    assert answer.data == {
        "request_id": filed["id"],
        "outcome": "refused",
        "deleted": [],
        "anonymised": [],
        "kept": [],
        "reason": "not available yet",
    }


@pytest.mark.obligation("OB-R-1")
async def test_an_answer_that_fits_no_request_is_not_recorded(consent: Consent) -> None:
    subject, headers = new_user(consent)
    other, _ = new_user(consent)
    correction = await file(consent, headers, kind="correction", corrections={"orders": {"a": 1}})
    request_id = correction["id"]
    spoofed = new_event(
        source="/orders",
        type=service.completion_type("identity"),
        subject=subject,
        purpose="rights.access",
        data={"request_id": request_id, "outcome": "done"},
    )
    for event in (
        spoofed,  # identity's answer sent by orders
        answer_event("orders", other, request_id),  # for someone else
        answer_event("orders", subject, "rr_unknown"),
        answer_event("identity", subject, request_id),  # not asked to correct anything
        answer_event("orders", subject, request_id, "maybe"),
    ):
        with pytest.raises(service.InvalidAnswer):
            await handle(consent, event)
    async with consent.context.database.session() as session:
        outcomes = (await session.scalars(select(col(RightsAnswer.outcome)))).all()
    assert outcomes == [None]


@pytest.mark.obligation("OB-R-1")
async def test_other_events_on_the_topics_are_skipped(consent: Consent) -> None:
    subject, _ = new_user(consent)
    await handle(
        consent,
        new_event(
            source="/orders",
            type="com.signature.orders.order.created.v1",
            subject=subject,
            purpose="order.fulfilment",
            data={"order_id": "ord_1"},
        ),
    )
    assert await consent.outbox_events() == []


# --------------------------------------------------------------------------- deadlines


@pytest.mark.obligation("OB-R-1")
async def test_a_request_past_its_deadline_shows_overdue_naming_the_missing_services(
    consent: Consent,
) -> None:
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="access")
    on_time = await file(consent, headers, kind="deletion")
    for name in ("identity", "orders"):
        await handle(consent, answer_event(name, subject, filed["id"]))
    await move_deadline_to_the_past(consent, filed["id"])

    view = (await consent.client.get(f"/rights-requests/{filed['id']}", headers=headers)).json()
    assert view["status"] == "overdue"
    assert view["overdue_services"] == ["consent", "transfer"]
    assert {p["service"]: p["status"] for p in view["participants"]} == {
        "consent": "overdue",
        "identity": "done",
        "orders": "done",
        "transfer": "overdue",
    }

    officer = consent.privacy_officer()
    overdue = (await consent.client.get("/rights-requests?status=overdue", headers=officer)).json()
    assert [(r["id"], r["subject"], r["overdue_services"]) for r in overdue] == [
        (filed["id"], subject, ["consent", "transfer"])
    ]
    still_open = (await consent.client.get("/rights-requests?status=open", headers=officer)).json()
    assert [r["id"] for r in still_open] == [on_time["id"]]
    unfinished = (await consent.client.get("/rights-requests", headers=officer)).json()
    assert {r["id"] for r in unfinished} == {filed["id"], on_time["id"]}
    assert (await consent.client.get("/rights-requests", headers=headers)).status_code == 403

    # The periodic report publishes each overdue request once. The app's own reporter runs
    # too (first right after start, which a busy machine may delay past the deadline move),
    # so the first report here may find the request reported already; never twice.
    async with consent.context.database.session() as session:
        reported = await service.report_overdue(
            session, events=consent.context.events, now=utcnow()
        )
    async with consent.context.database.session() as session:
        again = await service.report_overdue(session, events=consent.context.events, now=utcnow())
    assert reported in ([filed["id"]], []) and again == []
    (event,) = await events_of_type(consent, service.OVERDUE)
    assert event.subject == subject
    assert event.data["overdue_services"] == ["consent", "transfer"]

    # Late answers still complete it.
    for name in ("transfer", "consent"):
        await handle(consent, answer_event(name, subject, filed["id"]))
    view = (await consent.client.get(f"/rights-requests/{filed['id']}", headers=headers)).json()
    assert (view["status"], view["overdue_services"]) == ("completed", [])
    done = (await consent.client.get("/rights-requests?status=completed", headers=officer)).json()
    assert [r["id"] for r in done] == [filed["id"]]


CST = CHINA_TZ


@pytest.mark.parametrize(
    ("filed_at", "days", "due"),
    [
        # Monday morning: 15 working days end on the Monday three weeks later.
        (datetime(2026, 11, 30, 9, 0, tzinfo=CST), 15, date(2026, 12, 21)),
        # Friday evening: the weekend does not count.
        (datetime(2026, 12, 4, 22, 0, tzinfo=CST), 1, date(2026, 12, 7)),
        (datetime(2026, 12, 4, 22, 0, tzinfo=CST), 15, date(2026, 12, 25)),
        # Saturday: the first working day is Monday.
        (datetime(2026, 12, 5, 12, 0, tzinfo=CST), 1, date(2026, 12, 7)),
        # 23:30 UTC on Sunday is Monday 07:30 in China: the count starts from Monday.
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), 1, date(2026, 12, 8)),
    ],
)
@pytest.mark.obligation("OB-R-1")
def test_the_deadline_counts_working_days_in_china_standard_time(
    filed_at: datetime, days: int, due: date
) -> None:
    deadline = service.deadline_after(filed_at, days)
    assert service.due_date(deadline) == due
    assert deadline == datetime(due.year, due.month, due.day, tzinfo=CST) + timedelta(days=1)
    assert deadline.tzinfo == UTC


@pytest.mark.obligation("OB-R-1")
async def test_withdraw_all_withdraws_every_consent_with_receipts(consent: Consent) -> None:
    _, headers = new_user(consent)
    for purpose in ("location", "marketing.price_drop"):
        granted = await consent.client.post(
            "/consents",
            headers=headers,
            json={"purpose": purpose, "granted": True, "shown": {"text": f"{purpose} v1"}},
        )
        assert granted.status_code == 201, granted.text
    filed = await file(consent, headers, kind="withdraw_all")
    requested = next(
        e
        for e in await consent.outbox_events()
        if e.type == service.REQUESTED and e.data["request_id"] == filed["id"]
    )
    handle = rights_handler(consent.context, withdraw_all=_withdraw_all(consent.context))
    async with consent.context.database.session() as session:
        await handle(session, requested)
    state = (await consent.client.get("/consents/me", headers=headers)).json()
    assert state, "the consent state lists the grantable purposes"
    granted_now = [item for item in state["consents"] if item["granted"]]
    assert granted_now == []
    receipts = (await consent.client.get("/consents/me/receipts", headers=headers)).json()
    assert [r["granted"] for r in receipts][-2:] == [False, False]
    answer = next(
        e
        for e in await consent.outbox_events()
        if e.type == service.completion_type("consent") and e.data["request_id"] == filed["id"]
    )
    assert answer.data["outcome"] == "done"


@pytest.mark.obligation("OB-R-1")
async def test_a_participant_service_reads_its_corrections_with_a_service_token(
    consent: Consent,
) -> None:
    """Participants fetch their part themselves (``kit.rights.CorrectionsFetcher``): a
    service token for ``rights.access`` reads it and the read is a processing record with
    the service's client id; a service token for another purpose is refused."""
    subject, headers = new_user(consent)
    filed = await file(consent, headers, kind="correction", corrections=CORRECTIONS)

    def service_token(scopes: list[str], purposes: list[str]) -> dict[str, str]:
        token = consent.token(
            "svc_ordersparticipant", scopes, kind="service", client_type="server", purposes=purposes
        )
        return bearer(token)

    url = f"/rights-requests/{filed['id']}/corrections/orders"
    part = await consent.client.get(
        url, headers=service_token(["service:rights.access"], ["rights.access"])
    )
    assert part.status_code == 200, part.text
    assert part.json()["corrections"] == CORRECTIONS["orders"]
    refused = await consent.client.get(
        url,
        headers=service_token(["service:cross_border.transfer"], ["cross_border.transfer"]),
    )
    assert refused.status_code == 403
    reads = await events_of_type(consent, "com.signature.consent.personal_data.read.v1")
    assert [(e.subject, e.data["actor"]) for e in reads] == [(subject, "svc_ordersparticipant")]
