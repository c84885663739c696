"""The processing ledger: recording, the hash chain, the user's view, and the queries that
incidents and cessation use to find the users concerned. No HTTP here.

Recording (:func:`record_event`, the ``consent.ledger`` consumer's handler):

- A processing event ``com.signature.<service>.personal_data.{read,write,delete}.v<N>``
  (made by ``kit.outbox.EventWriter.processing``: data ``{actor, resource, action}``, the
  ``purpose`` and ``datacategories`` attributes) or an access event from the gateway,
  ``com.signature.<service>.access[.<what>].v<N>`` or
  ``com.signature.<service>.personal_data.access.v<N>`` with the same data, becomes one
  :class:`LedgerEntry` for the event's subject: who (the service from the event source,
  the actor id, an optional ``actor_role`` from the data), which categories, when (the
  event time), for what purpose, under which legal basis. Nothing of the event is dropped
  because it is malformed: a missing actor is recorded as ``unknown``.
- The legal basis comes from the catalogue kind of the purpose (PIPL art. 13):
  ``basic`` -> "contract / policy agreement" (necessary for the contract the user entered
  by agreeing to the policy, art. 13 (2)); ``additional`` and ``separate`` -> "consent"
  (art. 13 (1), separate consent for ``separate``, art. 29 / 39); ``legal`` -> "legal
  obligation" (art. 13 (3)). A purpose the catalogue does not know is recorded as
  "undetermined (purpose not in the catalogue)", so that it stands out.
- Identity's ``partner.registered`` (kind and name), ``service_client.registered`` (the
  service's name), ``account.created`` of staff accounts (roles) and ``role.granted``
  events, and transfer's ``recipient.registered`` (the overseas recipient's legal name),
  teach the ledger who its actors are (:class:`LedgerActor`); an entry shows its actor by
  that registered name (a staff member by role: staff ids are not shown to users).
- Idempotent: an event id already in the ledger is skipped (the consumer base also
  deduplicates, and ``event_id`` is unique).

The chain: a subject's entries are numbered ``seq`` 1, 2, ... in the order they were
recorded; ``entry_hash`` = SHA-256 over the previous entry's hash (64 zeros for the first)
and the canonical JSON of the entry (:func:`canonical_entry`: sorted keys, no spaces,
UTC timestamps with microseconds). :func:`verify_chain` recomputes it and names the first
entry that was edited, removed (a gap) or reordered; a page of the user's view checks its
own entries, their links and the numbering (:func:`verify_page`), at a cost that does not
grow with the ledger (``make bench``: the whole walk was 83 % of a page at 10k entries).
Appending is safe against a concurrent writer for the same subject: on PostgreSQL a
transaction-scoped advisory lock per subject serialises appends (SQLite transactions begin
IMMEDIATE), ``(subject, seq)`` is unique, and a lost race is retried in a savepoint with
the new head.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import ColumnElement, String, cast, func, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.catalogue import Catalogue
from kit.clock import CHINA_TZ
from kit.errors import ServiceUnavailable
from kit.events import Event
from kit.models import utcnow
from services.consent.ledger.models import LedgerActor, LedgerEntry
from services.consent.ledger.schemas import (
    Actor,
    ActorKind,
    CategoryView,
    ChainCheck,
    LedgerChoices,
    LedgerEntryView,
    LedgerPage,
    PurposeChoice,
)

GENESIS_HASH = "0" * 64
MAX_PAGE = 100
APPEND_ATTEMPTS = 5

LEGAL_BASIS_BY_KIND: dict[str, str] = {
    "basic": "contract / policy agreement",
    "additional": "consent",
    "separate": "consent",
    "legal": "legal obligation",
}
UNDETERMINED_BASIS = "undetermined (purpose not in the catalogue)"

_PROCESSING = re.compile(
    r"^com\.signature\.[a-z_]+\.personal_data\.(?P<action>read|write|delete)\.v[0-9]+$"
)
_ACCESS = re.compile(
    r"^com\.signature\.[a-z_]+\.(?:personal_data\.access|access(?:\.[a-z_]+)*)\.v[0-9]+$"
)
_ACTIONS = frozenset({"read", "write", "delete"})

IDENTITY_SOURCE = "/identity"
TRANSFER_SOURCE = "/transfer"
PARTNER_REGISTERED = "com.signature.identity.partner.registered.v1"
SERVICE_CLIENT_REGISTERED = "com.signature.identity.service_client.registered.v1"
RECIPIENT_REGISTERED = "com.signature.transfer.recipient.registered.v1"
ACCOUNT_CREATED = "com.signature.identity.account.created.v1"
ROLE_GRANTED = "com.signature.identity.role.granted.v1"


class ChainContention(ServiceUnavailable):
    """The subject's chain kept moving under us; the consumer retries the event."""

    code, title = "ledger-contention", "Ledger busy"


# --------------------------------------------------------------------------- the chain


def _timestamp(value: datetime) -> str:
    """``value`` in UTC as ``%Y-%m-%dT%H:%M:%S.%fZ`` (``isoformat`` writes the same for
    years from 1000 at a fifth of the cost of ``strftime``; its ``+00:00`` becomes ``Z``)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # strftime does not pad the year to four digits everywhere
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


_HASHED: Final = (
    "event_id", "subject", "seq", "occurred_at", "recorded_at", "event_type", "service",
    "actor", "actor_role", "action", "resource", "purpose", "legal_basis", "categories",
)  # fmt: skip
_TIMES: Final = frozenset({"occurred_at", "recorded_at"})
#: json's own string encoder (the one ``json.dumps(..., ensure_ascii=False)`` uses)
_JSON_STRING: Final = json.encoder.encode_basestring
_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_SORTED: Final = tuple(sorted(_HASHED))
#: the canonical object with a ``%s`` for each member's value, in sorted key order
_TEMPLATE: Final = "{" + ",".join(f"{_JSON_STRING(name)}:%s" for name in _SORTED) + "}"


@lru_cache(maxsize=1024)  # a batch's entries share their recorded_at
def _json_time(value: datetime) -> str:
    return '"' + _timestamp(value) + '"'


def _json_value(value: Any) -> str:
    """``value`` as ``json.dumps`` writes it inside the canonical object (its common types
    without a call into the encoder: this runs 14 times per entry)."""
    kind = type(value)
    if kind is str:
        return _JSON_STRING(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is list and all(type(item) is str for item in value):
        return "[" + ",".join(map(_JSON_STRING, value)) + "]"
    return _JSON.encode(value)


def canonical_facts(facts: Mapping[str, Any]) -> bytes:
    """An entry's facts (its columns by name) as canonical JSON: what its hash covers (all
    but the hashes and the row id): ``json.dumps`` with sorted keys, no spaces, non-ASCII
    as is, the two timestamps as UTC with microseconds (``2026-01-31T08:00:00.000000Z``),
    the categories as a list. Written into a template in sorted key order: the same bytes
    as that ``json.dumps`` of a dict (tested) at less cost, and every entry is hashed when
    recorded and again when verified."""
    return (
        _TEMPLATE
        % tuple(
            _json_time(facts[name])
            if name in _TIMES
            else _json_value(list(facts[name]) if name == "categories" else facts[name])
            for name in _SORTED
        )
    ).encode()


def canonical_entry(entry: LedgerEntry) -> bytes:
    """The entry's facts as canonical JSON (:func:`canonical_facts` of its columns)."""
    return canonical_facts({name: getattr(entry, name) for name in _HASHED})


def facts_hash(prev_hash: str, facts: Mapping[str, Any]) -> str:
    """SHA-256 over the previous entry's hash and the canonical JSON of ``facts``."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_facts(facts))
    return digest.hexdigest()


def entry_hash(prev_hash: str, entry: LedgerEntry) -> str:
    """SHA-256 over the previous entry's hash and this entry's canonical JSON."""
    return facts_hash(prev_hash, {name: getattr(entry, name) for name in _HASHED})


async def verify_chain(session: AsyncSession, subject: str) -> ChainCheck:
    """Walk the subject's chain in order; report the first entry that does not hold."""
    expected_prev, count = GENESIS_HASH, 0
    rows = await session.stream_scalars(
        select(LedgerEntry)
        .where(col(LedgerEntry.subject) == subject)
        .order_by(col(LedgerEntry.seq))
        .execution_options(yield_per=500, populate_existing=True)
    )
    async for entry in rows:
        count += 1
        reason: str | None = None
        if entry.seq != count:
            reason = f"entry {count} is missing or out of order (found seq {entry.seq})"
        elif entry.prev_hash != expected_prev:
            reason = "the link to the previous entry is broken"
        elif entry_hash(entry.prev_hash, entry) != entry.entry_hash:
            reason = "the entry's content does not match its hash"
        if reason is not None:
            await rows.close()
            return ChainCheck(
                subject=subject,
                valid=False,
                entries=count,
                first_invalid_seq=entry.seq,
                first_invalid_event_id=entry.event_id,
                reason=reason,
            )
        expected_prev = entry.entry_hash
    return ChainCheck(subject=subject, valid=True, entries=count)


async def chain_size(session: AsyncSession, subject: str) -> tuple[int, int]:
    """How many entries the subject's ledger holds and its highest ``seq``, read in one
    statement, so that an entry appended meanwhile cannot make them disagree."""
    count, highest = (
        await session.execute(
            select(func.count(), func.max(col(LedgerEntry.seq))).where(
                col(LedgerEntry.subject) == subject
            )
        )
    ).one()
    return int(count), int(highest or 0)


async def verify_page(
    session: AsyncSession,
    subject: str,
    entries: Sequence[LedgerEntry],
    *,
    count: int,
    highest: int,
) -> bool:
    """Whether the entries of one page hold: each matches its hash and links to its
    predecessor, and none of the subject's ``count`` entries is missing (``highest``, the
    top ``seq`` read with ``count`` by :func:`chain_size`, equals it: no gap). Reads the
    page's predecessors only, so a page costs the same at any ledger size;
    :func:`verify_chain` walks the whole chain (audits, incidents)."""
    if highest != count:
        return False
    on_page = {entry.seq: entry for entry in entries}
    wanted = {entry.seq - 1 for entry in entries if entry.seq > 1} - set(on_page)
    before = {
        entry.seq: entry
        for entry in await session.scalars(
            select(LedgerEntry).where(
                col(LedgerEntry.subject) == subject, col(LedgerEntry.seq).in_(wanted)
            )
        )
    }
    for entry in entries:
        predecessor = on_page.get(entry.seq - 1) or before.get(entry.seq - 1)
        expected_prev = (
            GENESIS_HASH
            if entry.seq == 1
            else (predecessor.entry_hash if predecessor is not None else None)
        )
        if entry.prev_hash != expected_prev or entry_hash(entry.prev_hash, entry) != (
            entry.entry_hash
        ):
            return False
    return True


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Processing:
    """The facts of a processing or access event, ready to record."""

    action: str
    actor: str
    actor_role: str | None
    resource: str


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_processing(event: Event) -> Processing | None:
    """The processing an event reports, or None when it is not a processing/access event."""
    processing = _PROCESSING.match(event.type)
    if processing is None and _ACCESS.match(event.type) is None:
        return None
    data = event.data
    stated = data.get("action")
    if processing is not None:
        action = processing["action"]
    else:
        action = stated if stated in _ACTIONS else "read"
    return Processing(
        action=action,
        actor=_text(data.get("actor"), 128) or "unknown",
        actor_role=_text(data.get("actor_role"), 100),
        resource=_text(data.get("resource"), 200) or "",
    )


def legal_basis_for(catalogue: Catalogue, purpose: str) -> str:
    if not catalogue.has_purpose(purpose):
        return UNDETERMINED_BASIS
    return LEGAL_BASIS_BY_KIND[catalogue.purpose(purpose).kind]


def service_of(event: Event) -> str:
    """The reporting service, from the event source (``/orders`` -> ``orders``)."""
    return event.source.strip("/").replace("/", "_")[:100]


async def _named(session: AsyncSession, actor_id: str, *, kind: str, name: str | None) -> None:
    actor = await session.get(LedgerActor, actor_id) or LedgerActor(actor=actor_id, kind=kind)
    actor.kind = kind
    actor.name = name or actor.name
    actor.updated_at = utcnow()
    session.add(actor)


async def learn_actor(session: AsyncSession, event: Event) -> bool:
    """Update the actor directory from one of identity's or transfer's registrations; True
    if it was one."""
    data = event.data
    if event.source == TRANSFER_SOURCE and event.type == RECIPIENT_REGISTERED:
        await _named(
            session, event.subject, kind="recipient", name=_text(data.get("legal_name"), 200)
        )
        return True
    if event.source != IDENTITY_SOURCE:
        return False
    if event.type == SERVICE_CLIENT_REGISTERED:
        await _named(session, event.subject, kind="service", name=_text(data.get("service"), 200))
        return True
    if event.type == PARTNER_REGISTERED:
        actor = await session.get(LedgerActor, event.subject) or LedgerActor(
            actor=event.subject, kind="partner"
        )
        actor.kind = "partner"
        actor.name = _text(data.get("name"), 200) or actor.name
        actor.partner_kind = _text(data.get("kind"), 50) or actor.partner_kind
        actor.updated_at = utcnow()
        session.add(actor)
        return True
    if event.type == ACCOUNT_CREATED and data.get("kind") == "staff":
        actor = await session.get(LedgerActor, event.subject) or LedgerActor(
            actor=event.subject, kind="staff"
        )
        roles = data.get("roles")
        actor.roles = sorted({*actor.roles, *(r for r in roles or [] if isinstance(r, str))})
        actor.updated_at = utcnow()
        session.add(actor)
        return True
    if event.type == ROLE_GRANTED:
        staff = await session.get(LedgerActor, event.subject)
        role = data.get("role")
        if staff is not None and staff.kind == "staff" and isinstance(role, str):
            staff.roles = sorted({*staff.roles, role})
            staff.updated_at = utcnow()
        return True
    return False


async def _lock_subject(session: AsyncSession, subject: str) -> None:
    """Serialise appends to one subject's chain until the transaction ends. PostgreSQL: a
    transaction-scoped advisory lock; SQLite transactions already begin IMMEDIATE."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(select(func.pg_advisory_xact_lock(_lock_key(subject))))


def _lock_key(subject: str) -> int:
    return zlib.crc32(f"consent.ledger:{subject}".encode())


async def _lock_subjects(session: AsyncSession, subjects: Iterable[str]) -> None:
    """:func:`_lock_subject` for many subjects in one statement, in ascending key order
    (every batch writer takes them in that order: no deadlock between two batches; a single
    append holds one lock only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(subject) for subject in subjects})
    if keys:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(key) FROM unnest(CAST(:keys AS bigint[])) AS key"),
            {"keys": keys},
        )


#: Each wanted subject's newest entry, found by the ``(subject, seq)`` index: one seek per
#: subject, whatever the length of its chain (reading all the subjects' entries and keeping
#: each one's newest cost a batch more with every entry recorded). PostgreSQL takes the
#: subjects as an array, SQLite as a JSON array.
_HEADS_POSTGRES: Final = text(
    "SELECT wanted.subject, newest.seq, newest.entry_hash "
    "FROM unnest(CAST(:subjects AS varchar[])) AS wanted(subject) "
    "CROSS JOIN LATERAL (SELECT seq, entry_hash FROM ledger_entry "
    "WHERE subject = wanted.subject ORDER BY seq DESC LIMIT 1) AS newest"
)
_HEADS_SQLITE: Final = text(
    "SELECT wanted.value, newest.seq, newest.entry_hash "
    "FROM json_each(:subjects) AS wanted JOIN ledger_entry AS newest "
    "ON newest.subject = wanted.value AND newest.seq = "
    "(SELECT max(seq) FROM ledger_entry WHERE subject = wanted.value)"
)


async def _heads(session: AsyncSession, subjects: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Each subject's last ``seq`` and hash (absent: an empty chain), in one query."""
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(_HEADS_POSTGRES, {"subjects": list(subjects)})
    else:
        rows = await session.execute(_HEADS_SQLITE, {"subjects": json.dumps(list(subjects))})
    return {subject: (seq, hash_) for subject, seq, hash_ in rows}


async def _head(session: AsyncSession, subject: str) -> tuple[int, str]:
    row = (
        await session.execute(
            select(col(LedgerEntry.seq), col(LedgerEntry.entry_hash))
            .where(col(LedgerEntry.subject) == subject)
            .order_by(col(LedgerEntry.seq).desc())
            .limit(1)
        )
    ).first()
    return (0, GENESIS_HASH) if row is None else (row[0], row[1])


async def _recorded(session: AsyncSession, event_id: str) -> bool:
    found = await session.scalar(
        select(col(LedgerEntry.id)).where(col(LedgerEntry.event_id) == event_id)
    )
    return found is not None


async def record_event(
    session: AsyncSession, event: Event, *, catalogue: Catalogue
) -> LedgerEntry | None:
    """The ledger consumer's handler: learn actors, record processing; None otherwise."""
    if await learn_actor(session, event):
        return None
    processing = parse_processing(event)
    if processing is None or await _recorded(session, event.id):
        return None
    await _lock_subject(session, event.subject)
    for _ in range(APPEND_ATTEMPTS):
        seq, prev_hash = await _head(session, event.subject)
        entry = _new_entry(event, processing, seq=seq + 1, prev_hash=prev_hash, catalogue=catalogue)
        try:
            async with session.begin_nested():
                session.add(entry)
                await session.flush()
        except IntegrityError:
            # Another writer appended to this subject first (or recorded this very event).
            if await _recorded(session, event.id):
                return None
            continue
        return entry
    raise ChainContention(f"could not append to the ledger of {event.subject}")


def _new_row(
    event: Event,
    processing: Processing,
    *,
    seq: int,
    prev_hash: str,
    catalogue: Catalogue,
    recorded_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``ledger_entry`` row of ``event`` at ``seq`` after ``prev_hash``, its hash set
    (``recorded_at``: now, unless given, once for a whole batch)."""
    row: dict[str, Any] = {
        "event_id": event.id,
        "subject": event.subject,
        "seq": seq,
        "occurred_at": event.time.astimezone(UTC),
        "recorded_at": recorded_at or utcnow(),
        "event_type": event.type,
        "service": service_of(event),
        "actor": processing.actor,
        "actor_role": processing.actor_role,
        "action": processing.action,
        "resource": processing.resource,
        "purpose": event.purpose,
        "legal_basis": legal_basis_for(catalogue, event.purpose),
        "categories": sorted(set(event.categories)),
        "prev_hash": prev_hash,
    }
    row["entry_hash"] = facts_hash(prev_hash, row)
    return row


def _new_entry(
    event: Event, processing: Processing, *, seq: int, prev_hash: str, catalogue: Catalogue
) -> LedgerEntry:
    return LedgerEntry(
        **_new_row(event, processing, seq=seq, prev_hash=prev_hash, catalogue=catalogue)
    )


async def record_events(
    session: AsyncSession, events: Sequence[Event], *, catalogue: Catalogue
) -> int:
    """The ledger consumer's batch handler: the same entries as :func:`record_event` for
    each event in turn, but the batch's subjects are locked in one statement, their chain
    heads read in one query, and the entries, built as plain rows (no ORM object each),
    written in one statement; the number of entries. A concurrent append makes that
    statement fail; the consumer then records the batch one event at a time (with its
    retries)."""
    processing: dict[str, list[tuple[Event, Processing]]] = {}
    for event in events:
        if await learn_actor(session, event):
            continue
        if (facts := parse_processing(event)) is not None:
            processing.setdefault(event.subject, []).append((event, facts))
    ids = [event.id for pending in processing.values() for event, _ in pending]
    if not ids:
        return 0
    recorded = set(
        await session.scalars(
            select(col(LedgerEntry.event_id)).where(col(LedgerEntry.event_id).in_(ids))
        )
    )
    subjects = sorted(processing)
    await _lock_subjects(session, subjects)
    heads = await _heads(session, subjects)
    rows: list[dict[str, Any]] = []
    now = utcnow()  # the batch is recorded in one transaction: one time for its entries
    for subject in subjects:
        seq, prev_hash = heads.get(subject, (0, GENESIS_HASH))
        for event, facts in processing[subject]:
            if event.id in recorded:
                continue
            recorded.add(event.id)
            seq += 1
            row = _new_row(
                event, facts, seq=seq, prev_hash=prev_hash, catalogue=catalogue, recorded_at=now
            )
            prev_hash = row["entry_hash"]
            rows.append(row)
    if rows:  # one multi-row INSERT: the ORM's unit of work per row was most of a batch
        await session.execute(insert(LedgerEntry.__table__), rows)  # type: ignore[attr-defined]
    return len(rows)


# --------------------------------------------------------------------------- the user's view


def _service_label(actor: str, reporting_service: str) -> str:
    """A component of a service named by its id (``orders.retention``): "the orders service
    (retention)"; any other id: the service that reported it."""
    owner, _, part = actor.partition(".")
    if part:
        return f"the {owner} service ({part.replace('_', ' ')})"
    return f"the {reporting_service} service"


def _actor_view(entry: LedgerEntry, directory: dict[str, LedgerActor]) -> Actor:
    return _actor_of(entry.subject, entry.actor, entry.service, entry.actor_role, directory)


def _actor_of(
    subject: str,
    actor_id: str,
    service: str,
    actor_role: str | None,
    directory: dict[str, LedgerActor],
) -> Actor:
    known = directory.get(actor_id)

    def shown(kind: ActorKind, name: str | None, display: str, role: str | None = None) -> Actor:
        # A staff member is named by role: their account id is not shown to users.
        return Actor(
            kind=kind,
            service=service,
            id=None if kind == "staff" else actor_id,
            name=name,
            role=role,
            display=display,
        )

    if actor_id == subject:
        return shown("self", None, "you")
    if actor_id.startswith("ptn_") or (known is not None and known.kind == "partner"):
        name = known.name if known else None
        kind_label = f"{known.partner_kind} partner" if known and known.partner_kind else "partner"
        return shown(
            "partner", name, f"{name} ({actor_id})" if name else f"{kind_label} {actor_id}"
        )
    if known is not None and known.kind == "recipient":
        label = f"overseas recipient {actor_id}"
        return shown("recipient", known.name, f"{known.name} ({label})" if known.name else label)
    if actor_role or (known is not None and known.kind == "staff"):
        role = actor_role or (", ".join(known.roles) if known and known.roles else None)
        return shown("staff", role, f"staff member ({role})" if role else "staff member", role)
    if actor_id.startswith("acc_"):
        return shown("user", None, f"account {actor_id}")
    if known is not None and known.kind == "service" and known.name:
        return shown("service", known.name, f"the {known.name} service")
    return shown("service", actor_id, _service_label(actor_id, service))


def _category_view(catalogue: Catalogue, category: str) -> CategoryView:
    try:
        known = catalogue.category(category)
    except KeyError:
        return CategoryView(id=category, description=None, sensitive=False)
    return CategoryView(
        id=category,
        name=known.name,
        name_zh=known.name_zh,
        description=known.description,
        sensitive=known.sensitive,
    )


def entry_view(
    entry: LedgerEntry, *, catalogue: Catalogue, directory: dict[str, LedgerActor]
) -> LedgerEntryView:
    purpose = catalogue.purpose(entry.purpose) if catalogue.has_purpose(entry.purpose) else None
    return LedgerEntryView(
        id=entry.event_id,
        occurred_at=entry.occurred_at,
        who=_actor_view(entry, directory),
        action=entry.action,
        resource=entry.resource,
        categories=[_category_view(catalogue, c) for c in entry.categories],
        purpose=entry.purpose,
        purpose_description=purpose.description if purpose else None,
        purpose_description_zh=purpose.description_zh if purpose else None,
        legal_basis=entry.legal_basis,
    )


async def _directory(session: AsyncSession, actors: Iterable[str]) -> dict[str, LedgerActor]:
    wanted = sorted(set(actors))
    if not wanted:
        return {}
    found = await session.scalars(select(LedgerActor).where(col(LedgerActor.actor).in_(wanted)))
    return {actor.actor: actor for actor in found}


@dataclass(frozen=True)
class LedgerFilter:
    """Which of a subject's entries a page shows; every part left None matches all.

    ``category`` matches an entry naming it or a category below it (``user.contact``
    matches ``user.contact.phone_number``); ``since`` and ``until`` are days in China
    Standard Time, both included."""

    purpose: str | None = None
    category: str | None = None
    actor: str | None = None
    since: date | None = None
    until: date | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.purpose is not None:
            found.append(col(LedgerEntry.purpose) == self.purpose)
        if self.actor is not None:
            found.append(col(LedgerEntry.actor) == self.actor)
        if self.category is not None:
            # The JSON list as text holds each id quoted: the id itself, or a child of it.
            listed = cast(col(LedgerEntry.categories), String)
            quoted = '"' + _like_escaped(self.category)
            found.append(
                or_(
                    listed.like(f'%{quoted}"%', escape="\\"),
                    listed.like(f"%{quoted}.%", escape="\\"),
                )
            )
        if self.since is not None:
            start = datetime.combine(self.since, time.min, CHINA_TZ)
            found.append(col(LedgerEntry.occurred_at) >= start)
        if self.until is not None:
            end = datetime.combine(self.until + timedelta(days=1), time.min, CHINA_TZ)
            found.append(col(LedgerEntry.occurred_at) < end)
        return found


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_own_entries(
    session: AsyncSession,
    *,
    catalogue: Catalogue,
    subject: str,
    limit: int,
    offset: int,
    only: LedgerFilter | None = None,
) -> LedgerPage:
    """The subject's ledger, newest first, one page of the entries ``only`` matches (all
    by default), with the chain's verdict on the page and on the whole chain's length."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    count, highest = await chain_size(session, subject)
    # Entries appended after the count belong to the next read: the page is of that moment.
    where = [
        col(LedgerEntry.subject) == subject,
        col(LedgerEntry.seq) <= highest,
        *(only.conditions() if only is not None else []),
    ]
    matching = count
    if only is not None and only != LedgerFilter():
        matching = int(await session.scalar(select(func.count()).where(*where)) or 0)
    entries = list(
        await session.scalars(
            select(LedgerEntry)
            .where(*where)
            .order_by(col(LedgerEntry.occurred_at).desc(), col(LedgerEntry.seq).desc())
            .offset(offset)
            .limit(limit)
        )
    )
    directory = await _directory(session, (entry.actor for entry in entries))
    chain_valid = await verify_page(session, subject, entries, count=count, highest=highest)
    return LedgerPage(
        entries=[entry_view(e, catalogue=catalogue, directory=directory) for e in entries],
        total=matching,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if offset + limit < matching else None,
        chain_valid=chain_valid,
    )


async def own_choices(
    session: AsyncSession, *, catalogue: Catalogue, subject: str
) -> LedgerChoices:
    """What the subject's ledger can be filtered by: the purposes, categories and actors
    its entries name (a staff member is never offered: their account id is not shown)."""
    mine = col(LedgerEntry.subject) == subject
    purposes = sorted(
        await session.scalars(select(col(LedgerEntry.purpose)).where(mine).distinct())
    )
    categories: set[str] = set()
    # JSON has no equality on PostgreSQL: the distinct lists are compared as text.
    listed = cast(col(LedgerEntry.categories), String)
    for text_list in await session.scalars(select(listed).where(mine).distinct()):
        categories.update(json.loads(text_list))
    rows = (
        await session.execute(
            select(col(LedgerEntry.actor), col(LedgerEntry.service), col(LedgerEntry.actor_role))
            .where(mine)
            .distinct()
        )
    ).all()
    directory = await _directory(session, (actor for actor, _, _ in rows))
    actors: dict[str, Actor] = {}
    for actor, service_name, role in rows:
        shown = _actor_of(subject, actor, service_name, role, directory)
        if shown.id is not None:
            actors.setdefault(shown.id, shown)
    return LedgerChoices(
        purposes=[_purpose_choice(catalogue, purpose) for purpose in purposes],
        categories=[_category_view(catalogue, category) for category in sorted(categories)],
        actors=sorted(actors.values(), key=lambda shown: shown.display),
    )


def _purpose_choice(catalogue: Catalogue, purpose_id: str) -> PurposeChoice:
    known = catalogue.purpose(purpose_id) if catalogue.has_purpose(purpose_id) else None
    return PurposeChoice(
        id=purpose_id,
        description=known.description if known else None,
        description_zh=known.description_zh if known else None,
    )


# --------------------------------------------------------------------------- finding users


def category_covered(category: str, affected: Sequence[str]) -> bool:
    """Whether ``category`` is one of ``affected`` or below one (fideslang hierarchy:
    ``user.contact`` covers ``user.contact.phone_number``)."""
    return any(category == a or category.startswith(a + ".") for a in affected)


async def affected_subjects(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    categories: Sequence[str] = (),
    actors: Sequence[str] = (),
) -> dict[str, set[str]]:
    """Every subject with an entry between ``start`` and ``end`` (inclusive) that touched
    one of ``categories`` (when given) by one of ``actors`` (service names or actor ids,
    when given), with the categories of theirs that matched."""
    query = select(col(LedgerEntry.subject), col(LedgerEntry.categories)).where(
        col(LedgerEntry.occurred_at) >= start, col(LedgerEntry.occurred_at) <= end
    )
    if actors:
        query = query.where(
            or_(col(LedgerEntry.service).in_(actors), col(LedgerEntry.actor).in_(actors))
        )
    found: dict[str, set[str]] = {}
    rows = await session.stream(query.execution_options(yield_per=1000))
    async for subject, entry_categories in rows:
        matched = {c for c in entry_categories if not categories or category_covered(c, categories)}
        if categories and not matched:
            continue
        found.setdefault(subject, set()).update(matched)
    return found


async def subjects_with_purpose(session: AsyncSession, purpose: str) -> list[str]:
    """Every subject with an entry under ``purpose``."""
    found = await session.scalars(
        select(col(LedgerEntry.subject))
        .where(col(LedgerEntry.purpose) == purpose)
        .distinct()
        .order_by(col(LedgerEntry.subject))
    )
    return list(found)


async def categories_for_purpose(session: AsyncSession, purpose: str) -> set[str]:
    """Every category the ledger saw processed under ``purpose``."""
    found: set[str] = set()
    rows = await session.stream_scalars(
        select(col(LedgerEntry.categories))
        .where(col(LedgerEntry.purpose) == purpose)
        .execution_options(yield_per=1000)
    )
    async for categories in rows:
        found.update(categories)
    return found


async def all_subjects(session: AsyncSession) -> list[str]:
    """Every subject with any entry."""
    found = await session.scalars(
        select(col(LedgerEntry.subject)).distinct().order_by(col(LedgerEntry.subject))
    )
    return list(found)


# --------------------------------------------------------------------------- explaining


async def processing_by_category(
    session: AsyncSession, *, subject: str, limit: int = 100_000
) -> dict[str, list[tuple[str, str, str]]]:
    """For the explanation right (OB-L-3): each category in ``subject``'s ledger, with the
    distinct (purpose, legal basis, who) it was processed for and by, who as the ledger
    shows it to the user."""
    entries = list(
        await session.scalars(
            select(LedgerEntry)
            .where(col(LedgerEntry.subject) == subject)
            .order_by(col(LedgerEntry.seq))
            .limit(limit)
        )
    )
    directory = await _directory(session, (entry.actor for entry in entries))
    found: dict[str, set[tuple[str, str, str]]] = {}
    for entry in entries:
        who = _actor_view(entry, directory).display
        for category in entry.categories:
            found.setdefault(category, set()).add((entry.purpose, entry.legal_basis, who))
    return {category: sorted(rows) for category, rows in sorted(found.items())}
