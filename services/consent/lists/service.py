"""The two lists of NDSMR art. 21 (OB-L-1), generated, never written by hand.

- The list of personal information collected comes from ``policy/catalogue.yaml``: one
  entry per personal data category with the purposes that use it, the services that
  collect it (method), the resources holding it (functions) and its retention periods.
- The list of third parties comes from the registries: every partner identity registered
  (``com.signature.identity.partner.registered.v1``, gone once revoked) and every overseas
  recipient transfer registered (``com.signature.transfer.recipient.registered.v1``), as
  the lists consumer records them in ``third_party``. Contacts are organisations' email
  addresses, which no event may carry, so the list names the privacy center as the
  contact for every third party; it forwards a user's question to the registry's contact.

:func:`refresh` makes a new :class:`ListVersion` when the generated lists differ from the
latest version or the policy version in effect changed (a new partner, recipient or
category makes a new version; so does a new policy version). Versions never change, and
:func:`diff_versions` compares any two. No HTTP here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.catalogue import Catalogue
from kit.errors import NotFound
from kit.events import Event
from services.consent.lists.models import ListVersion, ThirdParty
from services.consent.lists.schemas import (
    Change,
    CollectedItem,
    ListDiff,
    ListVersionSummary,
    ListVersionView,
    RetentionItem,
    SharedItem,
)
from services.consent.policies import service as policies
from services.consent.policies.service import NoPolicyInEffect

PARTNER_REGISTERED: Final = "com.signature.identity.partner.registered.v1"
PARTNER_REVOKED: Final = "com.signature.identity.partner.revoked.v1"
RECIPIENT_REGISTERED: Final = "com.signature.transfer.recipient.registered.v1"
REGISTRY_EVENTS: Final = {
    PARTNER_REGISTERED: "/identity",
    PARTNER_REVOKED: "/identity",
    RECIPIENT_REGISTERED: "/transfer",
}
CONTACT: Final = (
    "the privacy center: file a rights request or write to the contact in the privacy "
    "policy; it forwards the question to the registered contact of this third party"
)


class NoSuchListVersion(NotFound):
    code, title = "list-version-not-found", "No such list version"


# --------------------------------------------------------------------------- generating


def collected_list(catalogue: Catalogue) -> list[CollectedItem]:
    """Every personal data category the catalogue's resources hold, with its purposes,
    collecting services, resources and retention periods."""
    purposes: dict[str, set[str]] = {}
    services: dict[str, set[str]] = {}
    functions: dict[str, set[str]] = {}
    retention: dict[str, set[str]] = {}
    for resource_name, resource in catalogue.resources.items():
        service = resource_name.split(".", 1)[0]
        for field in resource.fields.values():
            category = field.category
            purposes.setdefault(category, set()).update(field.purposes)
            services.setdefault(category, set()).add(f"collected by the {service} service")
            functions.setdefault(category, set()).add(resource_name)
            retention.setdefault(category, set()).add(field.retention)
    items: list[CollectedItem] = []
    for category_id in sorted(purposes):
        kind = catalogue.category(category_id)
        if not kind.personal:
            continue
        items.append(
            CollectedItem(
                category=category_id,
                description=kind.description,
                sensitive=kind.sensitive,
                purposes=sorted(purposes[category_id]),
                method=sorted(services[category_id]),
                functions=sorted(functions[category_id]),
                retention=[
                    RetentionItem(
                        id=period.id,
                        duration=period.duration,
                        then=period.then,
                        legal_basis=" ".join(period.legal_basis.split()),
                    )
                    for period in (
                        catalogue.retention_period(r) for r in sorted(retention[category_id])
                    )
                ],
            )
        )
    return items


def categories_for_purposes(catalogue: Catalogue, purposes: Iterable[str]) -> list[str]:
    """The personal categories the catalogue lets any of ``purposes`` see."""
    wanted = set(purposes)
    return sorted(
        {
            field.category
            for resource in catalogue.resources.values()
            for field in resource.fields.values()
            if wanted & set(field.purposes) and catalogue.category(field.category).personal
        }
    )


def shared_list(parties: Sequence[ThirdParty]) -> list[SharedItem]:
    return [
        SharedItem(
            id=party.id,
            recipient=party.name,
            kind="partner" if party.kind == "partner" else "overseas_recipient",
            purposes=sorted(party.purposes),
            method=party.method,
            categories=sorted(party.categories),
            contact=CONTACT,
        )
        for party in sorted(parties, key=lambda p: (p.kind, p.name, p.id))
        if party.revoked_at is None
    ]


def _digest(collected: list[dict[str, Any]], shared: list[dict[str, Any]]) -> str:
    text = json.dumps({"collected": collected, "shared": shared}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- registries


async def record_registry_event(
    session: AsyncSession, *, catalogue: Catalogue, event: Event
) -> bool:
    """Record a partner or recipient registration (or a partner's revocation) from its
    registry's event; False for any other event."""
    if REGISTRY_EVENTS.get(event.type) != event.source:
        return False
    party = await session.get(ThirdParty, event.subject)
    if event.type == PARTNER_REVOKED:
        if party is not None and party.revoked_at is None:
            party.revoked_at = event.time
        return party is not None
    if party is not None:
        return False  # the first registration stands
    data = event.data
    if event.type == PARTNER_REGISTERED:
        purposes = [p for p in data.get("purposes", []) if isinstance(p, str)]
        entrusted = data.get("agreement_type") == "entrusted_processing"
        party = ThirdParty(
            id=event.subject,
            kind="partner",
            name=str(data.get("name") or event.subject)[:200],
            purposes=sorted(purposes),
            categories=categories_for_purposes(catalogue, purposes),
            method="entrusted processing on our behalf"
            if entrusted
            else f"provision ({str(data.get('agreement_type') or 'agreement')[:60]})",
            registered_at=event.time,
        )
    else:
        party = ThirdParty(
            id=event.subject,
            kind="overseas_recipient",
            name=str(data.get("legal_name") or event.subject)[:200],
            purposes=[event.purpose],
            categories=sorted(event.categories),
            method=f"transfer abroad ({str(data.get('delivery') or 'package')[:60]})",
            registered_at=event.time,
        )
    session.add(party)
    await session.flush()
    return True


# --------------------------------------------------------------------------- versions


async def _latest(session: AsyncSession) -> ListVersion | None:
    return await session.scalar(
        select(ListVersion).order_by(col(ListVersion.number).desc()).limit(1)
    )


async def _policy_in_effect(session: AsyncSession, today: date) -> str | None:
    try:
        return (await policies.current_version(session, today=today)).version
    except NoPolicyInEffect:
        return None


async def refresh(
    session: AsyncSession, *, catalogue: Catalogue, today: date, now: datetime
) -> ListVersion:
    """The latest version, made anew first when the lists or the policy in effect changed."""
    parties = list(await session.scalars(select(ThirdParty)))
    collected = [item.model_dump(mode="json") for item in collected_list(catalogue)]
    shared = [item.model_dump(mode="json") for item in shared_list(parties)]
    digest = _digest(collected, shared)
    policy_version = await _policy_in_effect(session, today)
    latest = await _latest(session)
    if latest is not None and latest.digest == digest and latest.policy_version == policy_version:
        return latest
    number = (await session.scalar(select(func.max(col(ListVersion.number))))) or 0
    made = ListVersion(
        number=number + 1,
        policy_version=policy_version,
        digest=digest,
        made_at=now,
        collected=collected,
        shared=shared,
    )
    session.add(made)
    await session.flush()
    return made


def _view(row: ListVersion) -> ListVersionView:
    return ListVersionView(
        number=row.number,
        policy_version=row.policy_version,
        made_at=row.made_at,
        digest=row.digest,
        collected=[CollectedItem.model_validate(item) for item in row.collected],
        shared=[SharedItem.model_validate(item) for item in row.shared],
    )


async def current_lists(
    session: AsyncSession, *, catalogue: Catalogue, today: date, now: datetime
) -> ListVersionView:
    return _view(await refresh(session, catalogue=catalogue, today=today, now=now))


async def get_version(session: AsyncSession, *, number: int) -> ListVersionView:
    row = await session.get(ListVersion, number)
    if row is None:
        raise NoSuchListVersion(f"no version {number} of the lists")
    return _view(row)


async def list_versions(session: AsyncSession) -> list[ListVersionSummary]:
    rows = await session.scalars(select(ListVersion).order_by(col(ListVersion.number).desc()))
    return [
        ListVersionSummary(
            number=row.number,
            policy_version=row.policy_version,
            made_at=row.made_at,
            digest=row.digest,
        )
        for row in rows
    ]


def _changes(before: list[dict[str, Any]], after: list[dict[str, Any]], key: str) -> list[Change]:
    old = {str(item[key]): item for item in before}
    new = {str(item[key]): item for item in after}
    changes: list[Change] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            changes.append(Change(key=name, change="added"))
        elif name not in new:
            changes.append(Change(key=name, change="removed"))
        elif old[name] != new[name]:
            fields = sorted(f for f in old[name].keys() | new[name].keys()
                            if old[name].get(f) != new[name].get(f))  # fmt: skip
            changes.append(Change(key=name, change="changed", fields=fields))
    return changes


async def diff_versions(session: AsyncSession, *, from_version: int, to_version: int) -> ListDiff:
    """What was added, removed or changed in each list from one version to another."""
    before = await session.get(ListVersion, from_version)
    after = await session.get(ListVersion, to_version)
    if before is None or after is None:
        missing = from_version if before is None else to_version
        raise NoSuchListVersion(f"no version {missing} of the lists")
    return ListDiff(
        from_version=from_version,
        to_version=to_version,
        collected=_changes(before.collected, after.collected, "category"),
        shared=_changes(before.shared, after.shared, "id"),
    )
