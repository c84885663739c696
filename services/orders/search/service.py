"""Goods search and the user's search history (policy 2B, OB-2B-1). No HTTP here.

A search matches goods by name: PostgreSQL's full-text search (the ``simple``
configuration, for words) or a substring match (for Chinese, which has no spaces between
words) on PostgreSQL, a case-insensitive substring match on SQLite. Each search is kept in
the user's search history (catalogue ``orders.search.search_history``, purpose
``search.basic``): the words as ciphertext under the user's key, the number of goods found,
the time. The user sees the history, deletes one entry or all of them; a deletion of the
account deletes it (``rights.service``), and the retention sweep deletes entries whose
``search_history`` period (from the catalogue) ended.

Recommendations: a search made while the user consents to ``recommendation.personalised``
(``consent_granted(subject, purpose)`` at the time of the search) is marked ``personalise``;
only those entries ever feed :func:`recommendations`. A search by a user who refused it
never does, even after a later consent.

Every write and delete is recorded as processing (the ledger); the history's read leaves
through the gateway, whose access event is its one ledger entry. Events carry ids and
counts, never the words.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit import contracts
from kit.catalogue import Catalogue
from kit.crypto import FieldCipher, SubjectKeyShredded
from kit.errors import NotFound
from kit.ids import new_id
from kit.models import utcnow
from kit.outbox import EventWriter
from services.orders.goods.service import goods_view
from services.orders.models import Goods, SearchEntry
from services.orders.search.schemas import (
    HistoryCleared,
    Recommendations,
    SearchEntryView,
    SearchHistoryView,
    SearchResults,
)

RESOURCE: Final = "orders.search"
FIELD: Final = "search_history"
PURPOSE: Final = "search.basic"
RECOMMENDATION_PURPOSE: Final = "recommendation.personalised"
RECOMMENDATION_ACTOR: Final = "orders.recommendation"
RETENTION_ACTOR: Final = "orders.retention"
EVENT_PREFIX: Final = "com.signature.orders.search"
CONTEXT: Final = f"{RESOURCE}.{FIELD}"
MAX_RESULTS: Final = 50
HISTORY_SHOWN: Final = 100
RECOMMENDATION_SOURCES: Final = 20
SWEEP_BATCH: Final = 500

ConsentCheck = Callable[[str, str], bool]


def check_catalogue(catalogue: Catalogue) -> None:
    """Start-up: the catalogue must describe the search history and its retention."""
    catalogue.field_policy(RESOURCE, FIELD)
    catalogue.retention_for(RESOURCE, FIELD)


def _categories(catalogue: Catalogue) -> list[str]:
    return [catalogue.field_policy(RESOURCE, FIELD).category]


def _record(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    action: Literal["read", "write", "delete"],
    purpose: str = PURPOSE,
    actor: str | None = None,
) -> None:
    events.field_processing(
        session,
        catalogue=catalogue,
        resource=RESOURCE,
        field=FIELD,
        owner_id=owner_id,
        action=action,
        purpose=purpose,
        actor=actor,
    )


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(session: AsyncSession, query: str) -> Any:
    substring = col(Goods.name).ilike(_like_pattern(query), escape="\\")
    if session.get_bind().dialect.name != "postgresql":
        return substring
    words = func.to_tsvector("simple", col(Goods.name)).op("@@")(
        func.plainto_tsquery("simple", query)
    )
    return or_(words, substring)


async def _find(session: AsyncSession, query: str, limit: int) -> list[Goods]:
    found = await session.scalars(
        select(Goods)
        .where(_matches(session, query))
        .order_by(col(Goods.created_at), col(Goods.id))
        .limit(limit)
    )
    return list(found)


async def search(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    query: str,
    consent_granted: ConsentCheck,
) -> SearchResults:
    """The goods matching ``query``; the search joins the owner's history."""
    goods = await _find(session, query, MAX_RESULTS)
    personalise = consent_granted(owner_id, RECOMMENDATION_PURPOSE)
    entry = SearchEntry(
        id=new_id("srh"),
        owner_id=owner_id,
        query_encrypted=await cipher.encrypt(
            session, subject=owner_id, value=query, context=CONTEXT
        ),
        result_count=len(goods),
        personalise=personalise,
        searched_at=utcnow(),
    )
    session.add(entry)
    events.add(
        session,
        type=f"{EVENT_PREFIX}.searched.v1",
        subject=owner_id,
        purpose=PURPOSE,
        data=contracts.SearchRecorded(
            entry_id=entry.id, result_count=len(goods), personalise=personalise
        ),
        categories=_categories(catalogue),
    )
    _record(session, events=events, catalogue=catalogue, owner_id=owner_id, action="write")
    await session.flush()
    return SearchResults(goods=[goods_view(item) for item in goods], entry_id=entry.id)


async def decrypted(
    session: AsyncSession, cipher: FieldCipher, entries: list[SearchEntry]
) -> list[tuple[SearchEntry, str]]:
    """Each entry with its words; entries whose owner's key was shredded are left out."""
    shown: list[tuple[SearchEntry, str]] = []
    for entry in entries:
        try:
            words = await cipher.decrypt(
                session, subject=entry.owner_id, token=entry.query_encrypted, context=CONTEXT
            )
        except SubjectKeyShredded:  # the account is gone: nothing readable is left
            continue
        shown.append((entry, words))
    return shown


async def entries_of(session: AsyncSession, *, owner_id: str) -> list[SearchEntry]:
    """Every entry of ``owner_id``, newest first (the access export)."""
    found = await session.scalars(
        select(SearchEntry)
        .where(col(SearchEntry.owner_id) == owner_id)
        .order_by(col(SearchEntry.searched_at).desc(), col(SearchEntry.id).desc())
    )
    return list(found)


async def history(
    session: AsyncSession, *, cipher: FieldCipher, owner_id: str
) -> SearchHistoryView:
    """The owner's search history, newest first. Not recorded here: the answer leaves
    through the gateway, whose access event is the one ledger entry of this read."""
    entries = list(
        await session.scalars(
            select(SearchEntry)
            .where(col(SearchEntry.owner_id) == owner_id)
            .order_by(col(SearchEntry.searched_at).desc(), col(SearchEntry.id).desc())
            .limit(HISTORY_SHOWN)
        )
    )
    shown = [
        SearchEntryView(
            entry_id=entry.id,
            query=words,
            result_count=entry.result_count,
            searched_at=entry.searched_at,
        )
        for entry, words in await decrypted(session, cipher, entries)
    ]
    return SearchHistoryView(search_history=shown, count=len(shown))


def _deleted(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    count: int,
    actor: str | None = None,
    purpose: str = PURPOSE,
) -> None:
    events.add(
        session,
        type=f"{EVENT_PREFIX}.history_deleted.v1",
        subject=owner_id,
        purpose=purpose,
        data=contracts.SearchHistoryDeleted(deleted=count),
        categories=_categories(catalogue),
    )
    _record(
        session,
        events=events,
        catalogue=catalogue,
        owner_id=owner_id,
        action="delete",
        purpose=purpose,
        actor=actor,
    )


async def delete_entry(
    session: AsyncSession,
    *,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
    entry_id: str,
) -> None:
    """Delete one entry of the owner's history; anyone else's is 404."""
    entry = await session.get(SearchEntry, entry_id)
    if entry is None or entry.owner_id != owner_id:
        raise NotFound("no such search history entry")
    await session.delete(entry)
    _deleted(session, events=events, catalogue=catalogue, owner_id=owner_id, count=1)


async def clear_history(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, owner_id: str
) -> HistoryCleared:
    """Delete the owner's whole search history."""
    count = await delete_all(session, owner_id=owner_id)
    if count:
        _deleted(session, events=events, catalogue=catalogue, owner_id=owner_id, count=count)
    return HistoryCleared(deleted=count)


async def delete_all(session: AsyncSession, *, owner_id: str) -> int:
    """Delete every entry of ``owner_id`` (the caller records why); how many there were."""
    result = await session.execute(delete(SearchEntry).where(col(SearchEntry.owner_id) == owner_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def recommendations(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    events: EventWriter,
    catalogue: Catalogue,
    owner_id: str,
) -> Recommendations:
    """Goods matching the owner's latest searches made with the recommendation consent.
    Searches made without it are never read for this."""
    entries = list(
        await session.scalars(
            select(SearchEntry)
            .where(col(SearchEntry.owner_id) == owner_id, col(SearchEntry.personalise))
            .order_by(col(SearchEntry.searched_at).desc(), col(SearchEntry.id).desc())
            .limit(RECOMMENDATION_SOURCES)
        )
    )
    seen: dict[str, Goods] = {}
    for _entry, words in await decrypted(session, cipher, entries):
        for goods in await _find(session, words, MAX_RESULTS):
            seen.setdefault(goods.id, goods)
    if entries:
        _record(
            session,
            events=events,
            catalogue=catalogue,
            owner_id=owner_id,
            action="read",
            purpose=RECOMMENDATION_PURPOSE,
            actor=RECOMMENDATION_ACTOR,
        )
    return Recommendations(goods=[goods_view(item) for item in list(seen.values())[:MAX_RESULTS]])


async def delete_tags(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, owner_id: str
) -> int:
    """Personalised recommendation switched off (OB-L-12; NDSMR art. 42, PIPL art. 24):
    the owner's tags go, i.e. no search of theirs is marked to feed recommendations any
    more, even after a later consent. The history itself stays under ``search.basic``.
    How many entries were untagged; the deletion is recorded as processing."""
    result = await session.execute(
        update(SearchEntry)
        .where(col(SearchEntry.owner_id) == owner_id, col(SearchEntry.personalise))
        .values(personalise=False)
    )
    untagged = int(getattr(result, "rowcount", 0) or 0)
    if untagged:
        _record(
            session,
            events=events,
            catalogue=catalogue,
            owner_id=owner_id,
            action="delete",
            purpose=RECOMMENDATION_PURPOSE,
            actor=RECOMMENDATION_ACTOR,
        )
    return untagged


async def expire(
    session: AsyncSession, *, events: EventWriter, catalogue: Catalogue, now: datetime
) -> int:
    """Delete the entries whose ``search_history`` period ended by ``now``, oldest first;
    one deletion record per owner. How many were deleted."""
    period = catalogue.retention_for(RESOURCE, FIELD)
    removed = 0
    while True:
        oldest = list(
            await session.scalars(
                select(SearchEntry)
                .order_by(col(SearchEntry.searched_at), col(SearchEntry.id))
                .limit(SWEEP_BATCH)
            )
        )
        due = [entry for entry in oldest if period.expires_at(entry.searched_at) <= now]
        by_owner: dict[str, int] = {}
        for entry in due:
            by_owner[entry.owner_id] = by_owner.get(entry.owner_id, 0) + 1
        if due:
            await session.execute(
                delete(SearchEntry).where(col(SearchEntry.id).in_([entry.id for entry in due]))
            )
        for owner_id, count in sorted(by_owner.items()):
            _deleted(
                session,
                events=events,
                catalogue=catalogue,
                owner_id=owner_id,
                count=count,
                actor=RETENTION_ACTOR,
                purpose="legal.retention",
            )
        removed += len(due)
        if len(due) < SWEEP_BATCH:
            return removed
