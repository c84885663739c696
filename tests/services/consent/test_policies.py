"""Policy versions: published on a public page and as JSON, archived and readable forever,
never changed once published; a major change asks users to agree again, a minor one does
not, and a change that reduces users' rights is only accepted as such a major change."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kit.auth import STAFF_ROLE_SCOPES
from kit.clock import china_today
from kit.testing import bearer, serve_app
from services.consent.config import DEFAULT_FIRST_POLICY
from services.consent.policies import service
from services.consent.policies.models import PolicyRecordImmutable, PolicyVersion
from tests.services.consent.conftest import Consent

TODAY = china_today()

TEXT_V1 = """# Signature Workshop privacy policy

## 5. Policy updates

We will post any changes to this policy on a dedicated page.

Major changes include:

  1. The product's business model has changed;
  2. The main recipients of shared information change.
"""

TEXT_V2 = TEXT_V1.replace("on a dedicated page.", "on a dedicated page and tell you in the app.")


def version_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "version": "2026.1",
        "effective_date": TODAY.isoformat(),
        "text": TEXT_V1,
        "summary_of_changes": "First published version.",
        "major": False,
        "major_change_kinds": [],
        "reduces_rights": False,
    }
    form.update(overrides)
    return form


async def post_version(consent: Consent, **overrides: Any) -> httpx.Response:
    return await consent.client.post(
        "/policy/versions", json=version_form(**overrides), headers=consent.privacy_officer()
    )


async def publish(consent: Consent, **overrides: Any) -> dict[str, Any]:
    response = await post_version(consent, **overrides)
    assert response.status_code == 201, response.text
    published: dict[str, Any] = response.json()
    return published


async def agree(consent: Consent, headers: dict[str, str], version: str) -> httpx.Response:
    return await consent.client.post(
        "/policy/agreements", json={"version": version}, headers=headers
    )


async def my_state(consent: Consent, headers: dict[str, str]) -> dict[str, Any]:
    response = await consent.client.get("/policy/agreements/me", headers=headers)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


def error_fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]


# --------------------------------------------------------------------------- OB-5-1


@pytest.mark.obligation("OB-5-1")
async def test_the_policy_in_effect_is_public_as_json_and_as_a_page(consent: Consent) -> None:
    assert (await consent.client.get("/policy")).status_code == 404  # nothing published yet
    published = await publish(consent)
    assert published["text_sha256"] == hashlib.sha256(TEXT_V1.encode()).hexdigest()

    response = await consent.client.get("/policy")  # no token: the policy is public
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "2026.1" and body["status"] == "current"
    assert body["effective_date"] == TODAY.isoformat() and body["text"] == TEXT_V1

    page = await consent.client.get("/policy.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert '<strong class="version">2026.1</strong>' in html
    assert f'datetime="{TODAY.isoformat()}"' in html
    assert "<h2>Signature Workshop privacy policy</h2>" in html
    assert "<li>The product&#x27;s business model has changed;</li>" in html
    assert "First published version." in html
    assert 'class="notice"' not in html  # a minor version has no prominent notice


@pytest.mark.obligation("OB-5-1")
async def test_the_page_escapes_the_text_so_it_cannot_inject_markup(consent: Consent) -> None:
    await publish(
        consent,
        text='# Title <img src=x onerror=alert(1)>\n\n<script>alert("x")</script> & more',
        summary_of_changes="<b>bold</b> claim",
    )
    html = (await consent.client.get("/policy.html")).text
    assert "<script>alert" not in html and "<img" not in html and "<b>bold" not in html
    assert "<h2>Title &lt;img src=x onerror=alert(1)&gt;</h2>" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in html


@pytest.mark.obligation("OB-5-1")
async def test_a_version_takes_effect_only_on_or_after_its_publication(consent: Consent) -> None:
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    response = await post_version(consent, effective_date=yesterday)
    assert response.status_code == 422 and error_fields(response) == ["body.effective_date"]

    await publish(
        consent, version="2026.2", effective_date=(TODAY + timedelta(days=30)).isoformat()
    )
    assert (await consent.client.get("/policy")).status_code == 404  # not in effect yet
    upcoming = (await consent.client.get("/policy/versions/2026.2")).json()
    assert upcoming["status"] == "upcoming"
    # A newer version cannot take effect before an older one.
    response = await post_version(
        consent, version="2026.3", effective_date=(TODAY + timedelta(days=10)).isoformat()
    )
    assert response.status_code == 422 and error_fields(response) == ["body.effective_date"]


# --------------------------------------------------------------------------- OB-5-4


@pytest.mark.obligation("OB-5-4")
async def test_old_versions_stay_in_the_archive_and_readable(consent: Consent) -> None:
    await publish(consent)
    await publish(consent, version="2026.2", text=TEXT_V2, summary_of_changes="Tell in app.")

    archive = (await consent.client.get("/policy/versions")).json()
    assert [v["version"] for v in archive] == ["2026.2", "2026.1"]  # newest first
    assert [v["status"] for v in archive] == ["current", "superseded"]
    assert all("text" not in v for v in archive)
    assert archive[1]["text_sha256"] == hashlib.sha256(TEXT_V1.encode()).hexdigest()

    assert (await consent.client.get("/policy")).json()["version"] == "2026.2"
    old = await consent.client.get("/policy/versions/2026.1")
    assert old.status_code == 200
    assert old.json()["text"] == TEXT_V1 and old.json()["status"] == "superseded"
    assert (await consent.client.get("/policy/versions/1999.1")).status_code == 404

    old_page = await consent.client.get("/policy.html", params={"version": "2026.1"})
    assert old_page.status_code == 200
    assert "This is an archived version" in old_page.text
    assert 'href="policy.html?version=2026.2"' in old_page.text  # the current one, linked
    current_page = (await consent.client.get("/policy.html")).text
    assert 'href="policy.html?version=2026.1"' in current_page  # the archive, linked


# --------------------------------------------------------------------------- immutability


@pytest.mark.obligation("OB-5-4")
async def test_published_versions_never_change(consent: Consent) -> None:
    await publish(consent)
    again = await post_version(consent, text="A quietly different text.")
    assert again.status_code == 409
    assert (await consent.client.get("/policy")).json()["text"] == TEXT_V1

    admin = consent.privacy_officer()
    for method in ("PUT", "PATCH", "DELETE"):
        response = await consent.client.request(
            method, "/policy/versions/2026.1", json=version_form(), headers=admin
        )
        assert response.status_code == 405, method
    routes = [r for r in consent.app.routes if getattr(r, "path", "").startswith("/policy")]
    methods = {m for r in routes for m in getattr(r, "methods", set())}
    assert methods <= {"GET", "HEAD", "POST"}

    # Not even code inside the service can change or delete one.
    async with consent.context.database.session() as session:
        stored = await session.scalar(select(PolicyVersion))
        assert stored is not None
        stored.text = "rewritten"
        with pytest.raises(PolicyRecordImmutable):
            await session.flush()
        await session.rollback()
    async with consent.context.database.session() as session:
        stored = await session.scalar(select(PolicyVersion))
        await session.delete(stored)
        with pytest.raises(PolicyRecordImmutable):
            await session.flush()
        await session.rollback()
    assert (await consent.client.get("/policy")).json()["text"] == TEXT_V1


# --------------------------------------------------------------------------- diff


@pytest.mark.obligation("OB-5-1")
async def test_a_diff_shows_what_changed_between_two_versions(consent: Consent) -> None:
    await publish(consent)
    await publish(consent, version="2026.2", text=TEXT_V2)
    response = await consent.client.get("/policy/diff", params={"from": "2026.1", "to": "2026.2"})
    assert response.status_code == 200
    body = response.json()
    assert body["from_version"] == "2026.1" and body["to_version"] == "2026.2"
    diff = body["diff"]
    assert diff.startswith("--- policy 2026.1")
    assert "-We will post any changes to this policy on a dedicated page." in diff
    assert "+We will post any changes to this policy on a dedicated page and tell you" in diff
    assert " ## 5. Policy updates" in diff  # context lines

    same = await consent.client.get("/policy/diff", params={"from": "2026.1", "to": "2026.1"})
    assert same.json()["diff"] == ""
    missing = await consent.client.get("/policy/diff", params={"from": "2026.1", "to": "9.9"})
    assert missing.status_code == 404


# --------------------------------------------------------------------------- OB-5-3


@pytest.mark.obligation("OB-5-3")
async def test_a_major_change_needs_renewed_consent(consent: Consent) -> None:
    await publish(consent)
    _, user = consent.user()
    assert (await agree(consent, user, "2026.1")).status_code == 201
    assert (await my_state(consent, user))["renewal_required"] is False

    await publish(
        consent,
        version="2026.2",
        text=TEXT_V2,
        summary_of_changes="Orders are now shared with a new logistics partner.",
        major=True,
        major_change_kinds=["sharing_recipients"],
    )
    state = await my_state(consent, user)
    assert state["renewal_required"] is True and state["reason"] == "major_change"
    assert state["version_to_agree"] == "2026.2" and state["policy_version_agreed"] == "2026.1"

    page = (await consent.client.get("/policy.html")).text
    assert 'class="notice" role="alert"' in page
    assert "Important: major changes to this policy" in page
    assert "The main recipients of shared or publicly disclosed" in page
    assert "agree to this version again" in page

    assert (await agree(consent, user, "2026.2")).status_code == 201
    state = await my_state(consent, user)
    assert state["renewal_required"] is False and state["policy_version_agreed"] == "2026.2"


@pytest.mark.obligation("OB-5-3")
async def test_a_minor_change_does_not_need_renewed_consent(consent: Consent) -> None:
    await publish(consent)
    _, user = consent.user()
    await agree(consent, user, "2026.1")
    await publish(consent, version="2026.1.1", text=TEXT_V2, summary_of_changes="Wording.")
    state = await my_state(consent, user)
    assert state["renewal_required"] is False and state["version_to_agree"] is None
    assert state["current_version"] == "2026.1.1"


@pytest.mark.obligation("OB-5-3")
async def test_renewal_starts_when_the_major_version_takes_effect(consent: Consent) -> None:
    await publish(consent)
    subject, user = consent.user()
    await agree(consent, user, "2026.1")
    takes_effect = TODAY + timedelta(days=30)
    await publish(
        consent,
        version="2026.2",
        effective_date=takes_effect.isoformat(),
        text=TEXT_V2,
        major=True,
        major_change_kinds=["contact_channel"],
    )
    # Announced ahead, prominently, on the current page.
    page = (await consent.client.get("/policy.html")).text
    assert "with major changes takes effect on" in page
    async with consent.context.database.session() as session:
        assert not await service.renewal_required(session, subject=subject, today=TODAY)
        assert await service.renewal_required(session, subject=subject, today=takes_effect)
    # A user who agrees ahead of time is not asked again.
    assert (await agree(consent, user, "2026.2")).status_code == 201
    async with consent.context.database.session() as session:
        assert not await service.renewal_required(session, subject=subject, today=takes_effect)


@pytest.mark.obligation("OB-5-3")
async def test_a_user_who_never_agreed_is_asked_to_agree(consent: Consent) -> None:
    _, user = consent.user()
    assert (await my_state(consent, user))["renewal_required"] is False  # nothing to agree to
    await publish(consent)
    state = await my_state(consent, user)
    assert state["renewal_required"] is True and state["reason"] == "never_agreed"
    assert state["version_to_agree"] == "2026.1" and state["agreements"] == []


# --------------------------------------------------------------------------- OB-5-2


@pytest.mark.obligation("OB-5-2")
async def test_a_change_reducing_rights_is_refused_unless_major_user_rights(
    consent: Consent,
) -> None:
    await publish(consent)
    reduced = TEXT_V2 + "\nRequests to delete data are answered within 60 days.\n"
    minor = await post_version(consent, version="2026.2", text=reduced, reduces_rights=True)
    assert minor.status_code == 422 and error_fields(minor) == ["body.reduces_rights"]
    other_kind = await post_version(
        consent,
        version="2026.2",
        text=reduced,
        reduces_rights=True,
        major=True,
        major_change_kinds=["business_model"],
    )
    assert other_kind.status_code == 422 and error_fields(other_kind) == ["body.reduces_rights"]
    assert (await consent.client.get("/policy")).json()["version"] == "2026.1"

    _, user = consent.user()
    await agree(consent, user, "2026.1")
    accepted = await publish(
        consent,
        version="2026.2",
        text=reduced,
        reduces_rights=True,
        major=True,
        major_change_kinds=["user_rights"],
        summary_of_changes="Deletion requests now take up to 60 days.",
    )
    assert accepted["reduces_rights"] is True and accepted["renewed_consent_required"] is True
    assert (await my_state(consent, user))["renewal_required"] is True  # explicit consent
    assert "This change affects your rights." in (await consent.client.get("/policy.html")).text


@pytest.mark.obligation("OB-5-3")
async def test_major_versions_name_their_kinds_and_minor_ones_none(consent: Consent) -> None:
    no_kind = await post_version(consent, major=True, major_change_kinds=[])
    assert no_kind.status_code == 422 and error_fields(no_kind) == ["body.major_change_kinds"]
    minor_kind = await post_version(consent, major=False, major_change_kinds=["controller"])
    assert minor_kind.status_code == 422
    assert error_fields(minor_kind) == ["body.major_change_kinds"]
    unknown = await post_version(consent, major=True, major_change_kinds=["whatever"])
    assert unknown.status_code == 422
    assert error_fields(unknown) == ["body.major_change_kinds.0"]
    extra = await post_version(consent, published_by="someone")
    assert extra.status_code == 422 and error_fields(extra) == ["body.published_by"]


# --------------------------------------------------------------------------- agreements


@pytest.mark.obligation("OB-5-1")
async def test_an_agreement_gives_a_receipt_and_is_announced(consent: Consent) -> None:
    await publish(consent, major=True, major_change_kinds=["controller", "business_model"])
    subject, _ = consent.user()
    web = bearer(consent.token(subject, ["consent:write", "consent:read"], client_type="web"))
    response = await agree(consent, web, "2026.1")
    assert response.status_code == 201
    receipt = response.json()
    assert receipt["receipt_id"].startswith("prc_") and receipt["subject"] == subject
    assert receipt["version"] == "2026.1" and receipt["channel"] == "web"
    assert receipt["text_sha256"] == hashlib.sha256(TEXT_V1.encode()).hexdigest()
    assert receipt["agreed_at"] and receipt["effective_date"] == TODAY.isoformat()

    state = await my_state(consent, web)
    assert state["subject"] == subject and state["agreements"] == [receipt]
    # Another user sees only their own receipts.
    _, other = consent.user()
    assert (await my_state(consent, other))["agreements"] == []

    events = {event.type: event for event in await consent.outbox_events()}
    published = events["com.signature.consent.policy.published.v1"]
    assert published.data["version"] == "2026.1" and published.data["major"] is True
    assert published.data["kinds"] == ["controller", "business_model"]
    agreed = events["com.signature.consent.policy.agreed.v1"]
    assert agreed.subject == subject
    assert agreed.data["version"] == "2026.1"
    assert agreed.data["receipt_id"] == receipt["receipt_id"]


@pytest.mark.obligation("OB-5-1")
async def test_agreeing_to_a_replaced_or_unknown_version_is_refused(consent: Consent) -> None:
    await publish(consent)
    await publish(consent, version="2026.2", text=TEXT_V2)
    _, user = consent.user()
    outdated = await agree(consent, user, "2026.1")
    assert outdated.status_code == 409 and outdated.json()["current_version"] == "2026.2"
    assert (await agree(consent, user, "3000.1")).status_code == 404
    assert (await my_state(consent, user))["agreements"] == []


# --------------------------------------------------------------------------- access


async def test_only_policy_admins_publish(consent: Consent) -> None:
    _, user = consent.user()
    as_user = await consent.client.post("/policy/versions", json=version_form(), headers=user)
    assert as_user.status_code == 403
    support = consent.token("acc_supportstaff", STAFF_ROLE_SCOPES["customer_service"], kind="staff")
    as_support = await consent.client.post(
        "/policy/versions", json=version_form(), headers=bearer(support)
    )
    assert as_support.status_code == 403
    anonymous = await consent.client.post("/policy/versions", json=version_form())
    assert anonymous.status_code == 401
    assert (await consent.client.get("/policy/versions")).json() == []
    # Agreeing and reading receipts need a user's token.
    assert (
        await consent.client.post("/policy/agreements", json={"version": "x1"})
    ).status_code == 401
    assert (await consent.client.get("/policy/agreements/me")).status_code == 401


@pytest.mark.obligation("OB-5-3")
async def test_an_agreement_is_published_in_the_consent_state(consent: Consent) -> None:
    officer = consent.privacy_officer()
    published = await consent.client.post(
        "/policy/versions",
        headers=officer,
        json={
            "version": "2026.9",
            "effective_date": str(TODAY),
            "text": "# Policy\\n\\nText.",
            "summary_of_changes": "first",
            "major": False,
            "major_change_kinds": [],
            "reduces_rights": False,
        },
    )
    assert published.status_code == 201, published.text
    subject, headers = consent.user()
    agreed = await consent.client.post(
        "/policy/agreements", headers=headers, json={"version": "2026.9"}
    )
    assert agreed.status_code == 201, agreed.text
    states = [
        e
        for e in await consent.outbox_events()
        if e.type == "com.signature.consent.state.v1" and e.subject == subject
    ]
    assert states and states[-1].data["policy"]["version_agreed"] == "2026.9"


# --------------------------------------------------------------------------- first start


@pytest.mark.obligation("OB-5-1")
async def test_the_shipped_policy_is_published_once_at_first_start(consent: Consent) -> None:
    settings = consent.settings.model_copy(update={"first_policy_path": DEFAULT_FIRST_POLICY})
    for _ in range(2):  # a restart publishes nothing more
        async with serve_app("services.consent", settings) as (_, client):
            versions = (await client.get("/policy/versions")).json()
            current = (await client.get("/policy")).json()
    assert [v["version"] for v in versions] == [current["version"]] == ["2026.1"]
    assert current["major"] and current["effective_date"] == TODAY.isoformat()
    published = [e for e in await consent.outbox_events() if e.type == service.PUBLISHED_EVENT]
    assert [e.data["sequence"] for e in published] == [1]


async def test_a_broken_first_policy_file_stops_start_up_naming_the_field(
    consent: Consent, tmp_path: Path
) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("version: '2026.1'\ntext: ''\nmajor: false\n", encoding="utf-8")
    settings = consent.settings.model_copy(update={"first_policy_path": broken})
    with pytest.raises(ValueError, match=r"policy\.yaml: .*text.*summary_of_changes"):
        async with serve_app("services.consent", settings):
            pass
