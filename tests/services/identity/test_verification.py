"""Real-name verification as a user of it would notice (service level, SQLite files):

- the sandbox's outcomes, and a provider outage that writes nothing (OB-2A-2);
- name and ID number only as ciphertext on disk, the face image nowhere: not in the
  database file, the outbox, nor the logs; read-backs masked; one account per ID number
  (OB-2A-3, OB-4-7);
- minors marked from their ID number, and a verified adult's guardian link (OB-2A-4).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from kit.catalogue import Catalogue, default_catalogue
from kit.crypto import FieldCipher
from kit.db import Database
from kit.errors import Conflict, Forbidden, NotFound
from kit.events import Event
from kit.id_number import InvalidIdNumber
from kit.models import OutboxMessage, SubjectKey, kit_registry
from kit.outbox import EventWriter
from services.identity.models import Account, RealNameVerification, registry
from services.identity.verification.authority import (
    AuthorityResult,
    ProviderUnavailable,
    SandboxAuthority,
)
from services.identity.verification.rules import VerificationRequired
from services.identity.verification.schemas import (
    GuardianLinkRequest,
    GuardianLinkResult,
    VerificationRequest,
    VerificationResult,
)
from services.identity.verification.service import (
    ID_NUMBER_CONTEXT,
    VerificationFailed,
    link_guardian,
    read_own,
    verify,
)
from tests.services.identity.ids import ADULT, ADULT_2, DOWN, MISMATCH, with_check

TODAY = date(2025, 6, 1)


CHILD = with_check("44030520150301024")  # 10 years old on TODAY
TEEN = with_check("11010520090101031")  # 16 on TODAY
NAME = "张三"
CHILD_NAME = "李小明"
FACE = b"\x89PNG\r\n-face-7f3a9c-unique-marker-" + bytes(range(64))


class RecordingAuthority:
    """The sandbox, counting calls (to prove which paths never reach the provider)."""

    def __init__(self) -> None:
        self.calls = 0
        self._sandbox = SandboxAuthority()

    async def check(
        self, *, real_name: str, id_number: str, face_image: bytes | None
    ) -> AuthorityResult:
        self.calls += 1
        return await self._sandbox.check(
            real_name=real_name, id_number=id_number, face_image=face_image
        )


@dataclass
class Env:
    db: Database
    path: Path
    cipher: FieldCipher = field(default_factory=lambda: FieldCipher(bytes(range(32))))
    catalogue: Catalogue = field(default_factory=default_catalogue)
    authority: RecordingAuthority = field(default_factory=RecordingAuthority)

    @property
    def events(self) -> EventWriter:
        return EventWriter(
            source="/identity",
            topic="identity.events",
            personal_fields=self.catalogue.personal_field_names(),
        )

    async def account(self, account_id: str) -> None:
        async with self.db.session() as session:
            session.add(
                Account(
                    id=account_id,
                    kind="user",
                    phone_index=f"phone-index-{account_id}",
                    phone_encrypted="v1.placeholder",
                    password_hash="argon2-placeholder",
                )
            )

    async def verify(
        self,
        account_id: str,
        id_number: str,
        name: str = NAME,
        face: bytes | None = None,
    ) -> VerificationResult:
        request = VerificationRequest(
            real_name=name,
            id_number=id_number,
            face_image=None if face is None else base64.b64encode(face).decode(),
        )
        async with self.db.session() as session:
            return await verify(
                session,
                cipher=self.cipher,
                events=self.events,
                catalogue=self.catalogue,
                authority=self.authority,
                account_id=account_id,
                request=request,
                today=TODAY,
            )

    async def link(self, guardian: str, name: str, id_number: str) -> GuardianLinkResult:
        async with self.db.session() as session:
            return await link_guardian(
                session,
                cipher=self.cipher,
                events=self.events,
                guardian_account_id=guardian,
                request=GuardianLinkRequest(real_name=name, id_number=id_number),
                today=TODAY,
            )

    async def get_account(self, account_id: str) -> Account:
        async with self.db.session() as session:
            account = await session.get(Account, account_id)
            assert account is not None
            return account

    async def row(self, account_id: str) -> RealNameVerification | None:
        async with self.db.session() as session:
            return await session.get(RealNameVerification, account_id)

    async def outbox(self) -> list[Event]:
        async with self.db.session() as session:
            payloads = await session.scalars(
                select(col(OutboxMessage.payload)).order_by(col(OutboxMessage.seq))
            )
            return [Event.model_validate_json(payload) for payload in payloads]

    async def raw_outbox(self) -> str:
        async with self.db.session() as session:
            return "\n".join(await session.scalars(select(col(OutboxMessage.payload))))

    def files(self) -> bytes:
        """The database file and its write-ahead log, as bytes on disk."""
        return b"".join(
            path.read_bytes()
            for path in (self.path, self.path.with_name(self.path.name + "-wal"))
            if path.exists()
        )


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    path = tmp_path / "identity.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
        await connection.run_sync(registry.metadata.create_all)
    environment = Env(db=database, path=path)
    for account_id in ("acc-1", "acc-2", "acc-child", "acc-teen"):
        await environment.account(account_id)
    yield environment
    await database.dispose()


def of_type(events: list[Event], suffix: str) -> list[Event]:
    return [event for event in events if event.type.endswith(suffix)]


# -- the sandbox provider (OB-2A-2) -------------------------------------------------------


@pytest.mark.obligation("OB-2A-2")
async def test_a_match_stores_the_verification_and_records_it(env: Env) -> None:
    result = await env.verify("acc-1", ADULT.lower())
    assert (result.level, result.minor) == ("real_name", False)
    assert (result.real_name, result.id_number) == ("张*", "1****************X")
    account = await env.get_account("acc-1")
    assert (account.verification_level, account.minor, account.verified) == (
        "real_name",
        False,
        True,
    )
    row = await env.row("acc-1")
    assert row is not None and row.level == "real_name" and row.minor_until is None
    assert row.id_number_index == env.cipher.blind_index(ADULT, context=ID_NUMBER_CONTEXT)
    events = await env.outbox()
    (completed,) = of_type(events, "verification.completed.v1")
    assert completed.subject == "acc-1" and completed.purpose == "identity.verification"
    assert completed.data == {"result": "match", "level": "real_name", "minor": False}
    (write,) = of_type(events, "personal_data.write.v1")
    assert write.data == {
        "actor": "acc-1",
        "resource": "identity.verification",
        "action": "write",
    }
    assert set(write.categories) == {
        "user.name",
        "user.government_id.national_identification_number",
        "user.minor.age",
    }
    assert not of_type(events, "personal_data.read.v1"), "no face, no face processing"


@pytest.mark.obligation("OB-2A-2")
async def test_a_face_image_gives_real_person_level(env: Env) -> None:
    result = await env.verify("acc-1", ADULT, face=FACE)
    assert result.level == "real_person"
    assert (await env.get_account("acc-1")).verification_level == "real_person"
    (face_use,) = of_type(await env.outbox(), "personal_data.read.v1")
    assert face_use.purpose == "sensitive.face_verification"
    assert face_use.categories == ("user.biometric.face",)
    # A later check by name only never lowers the level.
    again = await env.verify("acc-1", ADULT)
    assert again.level == "real_person"
    assert (await env.get_account("acc-1")).verification_level == "real_person"


@pytest.mark.obligation("OB-2A-2")
@pytest.mark.parametrize(
    ("id_number", "face", "level"),
    [(MISMATCH, None, "real_name"), (ADULT, b"NOFACE and more", "real_person")],
    ids=["sequence-999", "no-face"],
)
async def test_a_mismatch_stores_nothing_but_its_outcome(
    env: Env, id_number: str, face: bytes | None, level: str
) -> None:
    with pytest.raises(VerificationFailed) as caught:
        await env.verify("acc-1", id_number, face=face)
    assert caught.value.status == 422 and caught.value.code == "verification-failed"
    assert await env.row("acc-1") is None
    assert (await env.get_account("acc-1")).verification_level == "none"
    events = await env.outbox()
    assert [(e.type, e.data) for e in events] == [
        (
            "com.signature.identity.verification.completed.v1",
            {"result": "mismatch", "level": level},
        )
    ]
    assert events[0].categories == ()
    async with env.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(SubjectKey)) == 0


@pytest.mark.obligation("OB-2A-2")
async def test_provider_down_writes_nothing(env: Env) -> None:
    before = await env.get_account("acc-1")
    async with env.db.session() as session:  # even when the caller commits afterwards
        with pytest.raises(ProviderUnavailable) as caught:
            await verify(
                session,
                cipher=env.cipher,
                events=env.events,
                catalogue=env.catalogue,
                authority=env.authority,
                account_id="acc-1",
                request=VerificationRequest(real_name=NAME, id_number=DOWN),
                today=TODAY,
            )
    assert caught.value.status == 503 and caught.value.retry_after_s > 0
    with pytest.raises(ProviderUnavailable):  # and when it lets the error through
        await env.verify("acc-1", DOWN, face=FACE)
    assert await env.row("acc-1") is None
    after = await env.get_account("acc-1")
    assert after.model_dump() == before.model_dump()
    assert await env.outbox() == []
    async with env.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(SubjectKey)) == 0


@pytest.mark.obligation("OB-2A-2")
async def test_an_invalid_id_number_never_reaches_the_provider(env: Env) -> None:
    for bad in (ADULT[:-1] + "1", "110105491231002", with_check("99010519800101123")):
        with pytest.raises(InvalidIdNumber):
            await env.verify("acc-1", bad)
    assert env.authority.calls == 0
    assert await env.outbox() == []


# -- sensitive data (OB-2A-3, OB-4-7) --------------------------------------------------------


@pytest.mark.obligation("OB-2A-3")
async def test_name_and_id_number_are_stored_only_as_ciphertext(env: Env) -> None:
    await env.verify("acc-1", ADULT, name="欧阳娜娜")
    await env.db.engine.dispose()  # nothing cached in a connection
    on_disk = env.files()
    assert b"acc-1" in on_disk, "the scan sees the committed rows"
    for plain in ("欧阳娜娜", ADULT, ADULT.lower(), ADULT[:17]):
        assert plain.encode("utf-8") not in on_disk
        assert plain.encode("utf-16-le") not in on_disk
    row = await env.row("acc-1")
    assert row is not None
    assert row.real_name_encrypted.startswith("v1.") and row.id_number_encrypted.startswith("v1.")
    outbox = await env.raw_outbox()
    assert "欧阳娜娜" not in outbox and ADULT not in outbox
    assert "\\u6b27" not in outbox  # not even JSON-escaped


@pytest.mark.obligation("OB-2A-3")
async def test_the_face_image_is_never_kept_nor_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await env.verify("acc-1", ADULT, face=FACE)
    with pytest.raises(VerificationFailed):
        await env.verify("acc-2", ADULT_2, face=b"NOFACE" + FACE)
    await env.db.engine.dispose()
    on_disk = env.files()
    outbox = await env.raw_outbox()
    marker = b"face-7f3a9c-unique-marker"
    encoded = base64.b64encode(FACE).decode()
    encoded_noface = base64.b64encode(b"NOFACE" + FACE).decode()
    assert marker not in on_disk
    assert encoded.encode() not in on_disk and encoded_noface.encode() not in on_disk
    assert encoded[:40] not in outbox and encoded_noface[:40] not in outbox
    assert "face-7f3a9c" not in outbox
    logs = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert caplog.records, "the check ran with logging on"
    for secret in ("face-7f3a9c", encoded[:40], encoded_noface[:40], NAME, ADULT, ADULT_2):
        assert secret not in logs
    assert "real_name" not in repr(VerificationRequest(real_name=NAME, id_number=ADULT))


@pytest.mark.obligation("OB-2A-3")
async def test_read_back_is_masked_and_recorded(env: Env) -> None:
    await env.verify("acc-1", ADULT, name="欧阳娜娜")
    async with env.db.session() as session:
        result = await read_own(
            session,
            cipher=env.cipher,
            events=env.events,
            catalogue=env.catalogue,
            account_id="acc-1",
            today=TODAY,
        )
        nobody = await read_own(
            session,
            cipher=env.cipher,
            events=env.events,
            catalogue=env.catalogue,
            account_id="acc-2",
            today=TODAY,
        )
    assert nobody is None
    assert result is not None
    assert (result.real_name, result.id_number) == ("欧***", "1****************X")
    assert result.level == "real_name" and not result.minor
    assert result.verified_at.tzinfo is not None
    (read,) = of_type(await env.outbox(), "personal_data.read.v1")
    assert read.subject == "acc-1" and read.data["actor"] == "acc-1"
    assert set(read.categories) == {
        "user.name",
        "user.government_id.national_identification_number",
    }


@pytest.mark.obligation("OB-2A-3")
async def test_one_account_per_id_number(env: Env) -> None:
    await env.verify("acc-1", ADULT)
    calls = env.authority.calls
    with pytest.raises(Conflict) as caught:
        await env.verify("acc-2", ADULT.lower())
    assert caught.value.status == 409
    assert "acc-1" not in caught.value.detail
    assert env.authority.calls == calls, "refused before asking the provider"
    assert await env.row("acc-2") is None
    # ...and one ID number per account.
    with pytest.raises(Conflict):
        await env.verify("acc-1", ADULT_2)
    # Verifying again with the same number is fine.
    assert (await env.verify("acc-1", ADULT)).level == "real_name"


# -- minors (OB-2A-4) ------------------------------------------------------------------------


@pytest.mark.obligation("OB-2A-4")
async def test_a_ten_year_old_is_marked_a_minor(env: Env) -> None:
    result = await env.verify("acc-child", CHILD, name=CHILD_NAME)
    assert result.minor
    account = await env.get_account("acc-child")
    assert account.minor and account.guardian_account_id is None
    row = await env.row("acc-child")
    assert row is not None and row.minor_until == date(2029, 3, 1)
    (completed,) = of_type(await env.outbox(), "verification.completed.v1")
    assert completed.data["minor"] is True and "user.minor.age" in completed.categories


@pytest.mark.obligation("OB-2A-4")
async def test_a_verified_adult_becomes_the_guardian(env: Env) -> None:
    await env.verify("acc-child", CHILD, name=CHILD_NAME)
    await env.verify("acc-1", ADULT)
    linked = await env.link("acc-1", f" {CHILD_NAME} ", CHILD)
    assert (linked.ward_account_id, linked.guardian_account_id) == ("acc-child", "acc-1")
    ward = await env.get_account("acc-child")
    assert ward.guardian_account_id == "acc-1"
    assert ward.guardian_consent_at == linked.guardian_consent_at
    (event,) = of_type(await env.outbox(), "guardian.linked.v1")
    assert event.subject == "acc-child" and event.data == {"guardian_account_id": "acc-1"}
    # Idempotent for the same guardian; another adult cannot take over.
    again = await env.link("acc-1", CHILD_NAME, CHILD)
    assert again.guardian_consent_at == linked.guardian_consent_at
    assert len(of_type(await env.outbox(), "guardian.linked.v1")) == 1
    await env.verify("acc-2", ADULT_2)
    with pytest.raises(Conflict):
        await env.link("acc-2", CHILD_NAME, CHILD)


@pytest.mark.obligation("OB-2A-4")
async def test_an_unverified_guardian_is_refused(env: Env) -> None:
    await env.verify("acc-child", CHILD, name=CHILD_NAME)
    with pytest.raises(VerificationRequired) as caught:
        await env.link("acc-1", CHILD_NAME, CHILD)
    assert caught.value.status == 403
    assert (await env.get_account("acc-child")).guardian_account_id is None


@pytest.mark.obligation("OB-2A-4")
async def test_a_minor_cannot_be_a_guardian(env: Env) -> None:
    await env.verify("acc-child", CHILD, name=CHILD_NAME)
    await env.verify("acc-teen", TEEN)
    with pytest.raises(Forbidden):
        await env.link("acc-teen", CHILD_NAME, CHILD)


@pytest.mark.obligation("OB-2A-4")
async def test_a_wrong_name_or_unknown_ward_is_not_found_alike(env: Env) -> None:
    await env.verify("acc-child", CHILD, name=CHILD_NAME)
    await env.verify("acc-1", ADULT)
    await env.verify("acc-2", ADULT_2)
    details: set[tuple[type[Exception], str]] = set()
    for name, id_number in (
        ("李大明", CHILD),  # wrong name
        (CHILD_NAME, with_check("44030520150301046")),  # nobody verified this number
        (NAME, ADULT_2),  # right name, but an adult
    ):
        with pytest.raises(NotFound) as caught:
            await env.link("acc-1", name, id_number)
        details.add((type(caught.value), caught.value.detail))
    assert len(details) == 1, "the refusal does not say which part was wrong"
    assert (await env.get_account("acc-child")).guardian_account_id is None
    assert not of_type(await env.outbox(), "guardian.linked.v1")
