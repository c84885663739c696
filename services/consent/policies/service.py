"""Policy versions and agreements (policy section 5). No HTTP here.

- Publishing (:func:`publish_version`): versions are append-only and numbered in
  publication order (``sequence``); a version takes effect on its ``effective_date``, which
  is never in the past and never before an earlier version's, so a policy is published
  before it applies (OB-5-1) and "newer" means "higher sequence". A second publication of
  the same label is a conflict; nothing updates or deletes a version (OB-5-4).
- First start (:func:`publish_first_version`): the shipped policy (``policy/
  privacy-policy.yaml``, or the operator's file) is published as version one, effective
  that day, when no version exists yet; nothing otherwise, so it happens once however
  often and on however many instances the service starts.
- Reading: the current version (the newest in effect today), any archived version, the
  archive newest first, a unified diff between two versions, the HTML page (``page``).
- Agreeing (:func:`agree`): an append-only receipt binding the subject to the exact text
  (its SHA-256) through the channel the token names.
- Renewal (:func:`agreement_state`, :func:`renewal_required`): computed, never stored. A
  user must agree again when a major version in effect is newer than the newest version
  they agreed to (OB-5-3), or when they never agreed to any version. Minor versions never
  require it; a rights-reducing change is only accepted as major (OB-5-2), so it never
  applies to a user without their renewed consent.

Events (outbox, purpose ``account``): ``com.signature.consent.policy.published.v1`` (subject
``policy``, so every publication lands on one partition, in order) and
``com.signature.consent.policy.agreed.v1`` (subject: the user).
"""

from __future__ import annotations

import difflib
import hashlib
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.clock import CHINA_TZ
from kit.contracts import PolicyAgreed, PolicyPublished
from kit.errors import Conflict, DomainError, NotFound
from kit.ids import new_id
from kit.outbox import EventWriter
from services.consent.policies import page
from services.consent.policies.models import PolicyAgreement, PolicyVersion
from services.consent.policies.schemas import (
    AgreementReceipt,
    AgreementState,
    MyAgreements,
    PolicyDiff,
    PolicyVersionCreate,
    PolicyVersionSummary,
    PolicyVersionView,
    VersionStatus,
)

EVENT_PREFIX: Final = "com.signature.consent.policy"
PUBLISHED_EVENT: Final = f"{EVENT_PREFIX}.published.v1"
AGREED_EVENT: Final = f"{EVENT_PREFIX}.agreed.v1"
EVENT_PURPOSE: Final = "account"
#: The subject of publication events: one key, so consumers see publications in order.
POLICY_SUBJECT: Final = "policy"
#: Who published the shipped first version: the service itself, at first start.
FIRST_PUBLISHER: Final = "consent"


class PolicyVersionExists(Conflict):
    code, title = "policy-version-exists", "Policy version already published"


class PolicyVersionRejected(DomainError):
    """A version that section 5 does not allow; ``errors`` names the field, as a 422 for
    an invalid body does."""

    status, code, title = 422, "validation-error", "Invalid policy version"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"invalid field: {field}: {message}",
            extra={"errors": [{"field": field, "message": message, "type": "policy_rule"}]},
        )


class PolicyVersionNotFound(NotFound):
    code, title = "policy-version-not-found", "No such policy version"


class NoPolicyInEffect(NotFound):
    code, title = "no-policy-in-effect", "No policy in effect"


class OutdatedPolicyVersion(Conflict):
    code, title = "outdated-policy-version", "Outdated policy version"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_receipt_id() -> str:
    return new_id("prc")


# --------------------------------------------------------------------------- look-ups


async def _current(session: AsyncSession, *, today: date) -> PolicyVersion | None:
    """The newest version in effect on ``today``."""
    found: PolicyVersion | None = await session.scalar(
        select(PolicyVersion)
        .where(col(PolicyVersion.effective_date) <= today)
        .order_by(col(PolicyVersion.sequence).desc())
        .limit(1)
    )
    return found


async def _latest_major_in_effect(session: AsyncSession, *, today: date) -> int | None:
    """The sequence of the newest major version in effect on ``today``."""
    sequence: int | None = await session.scalar(
        select(func.max(col(PolicyVersion.sequence))).where(
            col(PolicyVersion.major).is_(True), col(PolicyVersion.effective_date) <= today
        )
    )
    return sequence


async def _newest_agreed(session: AsyncSession, *, subject: str) -> PolicyVersion | None:
    """The newest version ``subject`` agreed to."""
    found: PolicyVersion | None = await session.scalar(
        select(PolicyVersion)
        .join(PolicyAgreement, col(PolicyAgreement.version) == col(PolicyVersion.version))
        .where(col(PolicyAgreement.subject) == subject)
        .order_by(col(PolicyVersion.sequence).desc())
        .limit(1)
    )
    return found


async def _version(session: AsyncSession, version: str) -> PolicyVersion:
    found = await session.get(PolicyVersion, version)
    if found is None:
        raise PolicyVersionNotFound(f"no policy version {version!r}")
    return found


def _status(version: PolicyVersion, *, current: PolicyVersion | None, today: date) -> VersionStatus:
    if version.effective_date > today:
        return "upcoming"
    if current is not None and version.sequence == current.sequence:
        return "current"
    return "superseded"


def _summary_fields(
    version: PolicyVersion, *, current: PolicyVersion | None, today: date
) -> dict[str, Any]:
    return {
        "version": version.version,
        "sequence": version.sequence,
        "status": _status(version, current=current, today=today),
        "effective_date": version.effective_date,
        "published_at": version.published_at,
        "summary_of_changes": version.summary_of_changes,
        "major": version.major,
        "major_change_kinds": list(version.major_change_kinds),
        "reduces_rights": version.reduces_rights,
        "renewed_consent_required": version.major,
        "text_sha256": version.text_sha256,
    }


def _view(
    version: PolicyVersion, *, current: PolicyVersion | None, today: date
) -> PolicyVersionView:
    return PolicyVersionView(
        **_summary_fields(version, current=current, today=today), text=version.text
    )


def _receipt(agreement: PolicyAgreement, version: PolicyVersion) -> AgreementReceipt:
    return AgreementReceipt(
        receipt_id=agreement.receipt_id,
        subject=agreement.subject,
        version=agreement.version,
        effective_date=version.effective_date,
        agreed_at=agreement.agreed_at,
        channel=agreement.channel,
        text_sha256=agreement.text_sha256,
    )


# --------------------------------------------------------------------------- publishing


async def publish_version(
    session: AsyncSession,
    *,
    events: EventWriter,
    request: PolicyVersionCreate,
    published_by: str,
    today: date,
) -> PolicyVersionView:
    """Publish a new version; it takes effect on its effective date and never changes."""
    if await session.get(PolicyVersion, request.version) is not None:
        raise PolicyVersionExists(
            f"policy version {request.version!r} is already published; versions never change"
        )
    if request.effective_date < today:
        raise PolicyVersionRejected(
            "body.effective_date",
            "a version takes effect only after it is published: today or later",
        )
    latest: PolicyVersion | None = await session.scalar(
        select(PolicyVersion).order_by(col(PolicyVersion.sequence).desc()).limit(1)
    )
    if latest is not None and request.effective_date < latest.effective_date:
        raise PolicyVersionRejected(
            "body.effective_date",
            f"version {latest.version} takes effect on {latest.effective_date}; "
            "a newer version cannot take effect before it",
        )
    version = PolicyVersion(
        version=request.version,
        sequence=(latest.sequence + 1) if latest is not None else 1,
        effective_date=request.effective_date,
        text=request.text,
        text_sha256=text_sha256(request.text),
        summary_of_changes=request.summary_of_changes,
        major=request.major,
        major_change_kinds=list(request.major_change_kinds),
        reduces_rights=request.reduces_rights,
        published_by=published_by,
    )
    session.add(version)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise PolicyVersionExists(
            "another version was published at the same moment; reload and try again"
        ) from exc
    events.add(
        session,
        type=PUBLISHED_EVENT,
        subject=POLICY_SUBJECT,
        purpose=EVENT_PURPOSE,
        data=PolicyPublished(
            version=version.version,
            sequence=version.sequence,
            effective_date=version.effective_date.isoformat(),
            major=version.major,
            kinds=list(version.major_change_kinds),
            reduces_rights=version.reduces_rights,
            text_sha256=version.text_sha256,
        ),
    )
    current = await _current(session, today=today)
    return _view(version, current=current, today=today)


def load_first_version(path: Path, *, effective_date: date) -> PolicyVersionCreate:
    """The shipped policy file as a publication taking effect on ``effective_date``; a bad
    file stops start-up naming the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path.name}: cannot read the first policy: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: the first policy is a mapping of publication fields")
    try:
        return PolicyVersionCreate.model_validate({**raw, "effective_date": effective_date})
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path.name}: {fields}") from None


async def publish_first_version(
    session: AsyncSession,
    *,
    events: EventWriter,
    request: PolicyVersionCreate,
    today: date,
) -> PolicyVersionView | None:
    """Publish ``request`` when no version was ever published; None when one was (a
    restart, or another instance that got there first)."""
    if await session.scalar(select(func.count()).select_from(PolicyVersion)):
        return None
    try:
        async with session.begin_nested():
            return await publish_version(
                session,
                events=events,
                request=request,
                published_by=FIRST_PUBLISHER,
                today=today,
            )
    except PolicyVersionExists:
        return None


# --------------------------------------------------------------------------- reading


async def current_version(session: AsyncSession, *, today: date) -> PolicyVersionView:
    current = await _current(session, today=today)
    if current is None:
        raise NoPolicyInEffect("no policy version is in effect yet")
    return _view(current, current=current, today=today)


def in_effect_since(view: PolicyVersionSummary) -> datetime:
    """When the version in effect became so: 00:00 China Standard Time on its effective
    date, or its publication if later (the ``Last-Modified`` of the policy in effect)."""
    start = datetime.combine(view.effective_date, time(), CHINA_TZ)
    published = view.published_at
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return max(start, published)


async def get_version(session: AsyncSession, *, version: str, today: date) -> PolicyVersionView:
    found = await _version(session, version)
    return _view(found, current=await _current(session, today=today), today=today)


async def list_versions(session: AsyncSession, *, today: date) -> list[PolicyVersionSummary]:
    """Every published version, newest first (the archive, OB-5-4)."""
    current = await _current(session, today=today)
    versions = await session.scalars(
        select(PolicyVersion).order_by(col(PolicyVersion.sequence).desc())
    )
    return [
        PolicyVersionSummary(**_summary_fields(version, current=current, today=today))
        for version in versions
    ]


async def diff_versions(session: AsyncSession, *, from_version: str, to_version: str) -> PolicyDiff:
    """A unified diff from one version's text to another's."""
    old = await _version(session, from_version)
    new = await _version(session, to_version)
    lines = difflib.unified_diff(
        old.text.splitlines(),
        new.text.splitlines(),
        fromfile=f"policy {old.version} (effective {old.effective_date})",
        tofile=f"policy {new.version} (effective {new.effective_date})",
        lineterm="",
    )
    diff = "\n".join(lines)
    return PolicyDiff(
        from_version=old.version, to_version=new.version, diff=f"{diff}\n" if diff else ""
    )


async def policy_page(session: AsyncSession, *, version: str | None, today: date) -> str:
    """The HTML page of the current version, or of ``version`` from the archive."""
    shown = await (
        get_version(session, version=version, today=today)
        if version is not None
        else current_version(session, today=today)
    )
    archive = await list_versions(session, today=today)
    return page.render_policy_page(shown, archive=archive)


# --------------------------------------------------------------------------- agreements


async def agree(
    session: AsyncSession,
    *,
    events: EventWriter,
    subject: str,
    version: str,
    channel: str,
    today: date,
) -> AgreementReceipt:
    """Record that ``subject`` agreed to ``version`` (the current one or an upcoming one)."""
    agreed = await _version(session, version)
    current = await _current(session, today=today)
    if _status(agreed, current=current, today=today) == "superseded":
        assert current is not None
        raise OutdatedPolicyVersion(
            f"version {agreed.version} has been replaced; agree to version {current.version}",
            extra={"current_version": current.version},
        )
    agreement = PolicyAgreement(
        receipt_id=new_receipt_id(),
        subject=subject,
        version=agreed.version,
        channel=channel,
        text_sha256=agreed.text_sha256,
    )
    session.add(agreement)
    await session.flush()
    events.add(
        session,
        type=AGREED_EVENT,
        subject=subject,
        purpose=EVENT_PURPOSE,
        data=PolicyAgreed(
            version=agreed.version,
            sequence=agreed.sequence,
            receipt_id=agreement.receipt_id,
            channel=channel,
        ),
    )
    return _receipt(agreement, agreed)


async def agreement_state(session: AsyncSession, *, subject: str, today: date) -> AgreementState:
    """Where ``subject`` stands with the policy on ``today``: the newest version agreed
    to, and whether they must agree (again) before relying on the policy."""
    current = await _current(session, today=today)
    agreed = await _newest_agreed(session, subject=subject)
    state: dict[str, Any] = {
        "policy_version_agreed": agreed.version if agreed else None,
        "policy_sequence_agreed": agreed.sequence if agreed else None,
        "current_version": current.version if current else None,
        "renewal_required": False,
        "version_to_agree": None,
        "reason": None,
    }
    if current is None:
        return AgreementState(**state)
    if agreed is None:
        state.update(renewal_required=True, version_to_agree=current.version, reason="never_agreed")
        return AgreementState(**state)
    major = await _latest_major_in_effect(session, today=today)
    if major is not None and major > agreed.sequence:
        state.update(renewal_required=True, version_to_agree=current.version, reason="major_change")
    return AgreementState(**state)


async def renewal_required(session: AsyncSession, *, subject: str, today: date) -> bool:
    """True when ``subject`` must agree to the policy (again) on ``today``: a major version
    in effect is newer than the newest version they agreed to, or they never agreed."""
    return (await agreement_state(session, subject=subject, today=today)).renewal_required


async def my_agreements(session: AsyncSession, *, subject: str, today: date) -> MyAgreements:
    """The user's receipts, newest first, and whether renewed consent is needed."""
    rows = await session.execute(
        select(PolicyAgreement, PolicyVersion)
        .join(PolicyVersion, col(PolicyAgreement.version) == col(PolicyVersion.version))
        .where(col(PolicyAgreement.subject) == subject)
        .order_by(col(PolicyAgreement.agreed_at).desc(), col(PolicyVersion.sequence).desc())
    )
    receipts = [_receipt(agreement, version) for agreement, version in rows]
    state = await agreement_state(session, subject=subject, today=today)
    return MyAgreements(**state.model_dump(), subject=subject, agreements=receipts)
