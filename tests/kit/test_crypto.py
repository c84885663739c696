"""Field encryption at rest (``kit.crypto``): what a user of the data would notice.

- values round-trip, and never reach the database file in clear (nor do their keys);
- a ciphertext only decrypts in its own field, for its own subject, under its own master
  key, and a tampered one is refused with a clear error;
- shredding a subject's key erases all of its data for good, and only its data;
- blind indexes are deterministic, keyed and separated by field;
- two sessions racing to encrypt a new subject's first value end with one key.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from kit.crypto import DecryptionFailed, FieldCipher, SubjectKeyShredded
from kit.db import Database
from kit.models import SubjectKey, kit_registry

MASTER_KEY = bytes(range(32))
NAME = "orders.order.consignee_name"
PHONE = "orders.order.consignee_phone"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher(MASTER_KEY)


@pytest.mark.obligation("OB-4-7")
async def test_round_trip_and_random_nonce(db: Database, cipher: FieldCipher) -> None:
    async with db.session() as session:
        first = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
        second = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
    assert first.startswith("v1.")
    assert "Zhang Wei" not in first
    assert first != second
    async with db.session() as session:
        assert await cipher.decrypt(session, subject="u1", token=first, context=NAME) == (
            "Zhang Wei"
        )
        assert await cipher.decrypt(session, subject="u1", token=second, context=NAME) == (
            "Zhang Wei"
        )
        unicode_token = await cipher.encrypt(session, subject="u1", value="张伟 ✓", context=NAME)
        assert await cipher.decrypt(session, subject="u1", token=unicode_token, context=NAME) == (
            "张伟 ✓"
        )


@pytest.mark.obligation("OB-4-7")
async def test_database_file_holds_neither_plaintext_nor_data_key(
    tmp_path: Path, db: Database, cipher: FieldCipher
) -> None:
    phone = "+86 138 0013 8000"
    async with db.session() as session:
        token = await cipher.encrypt(session, subject="u1", value=phone, context=PHONE)
        # The token is what a service stores; keep it in the database too.
        await cipher.encrypt(session, subject="u2", value=token, context=NAME)
    async with db.session() as session:
        data_key = await cipher._data_key(session, subject="u1", create=False)
        wrapped = (
            await session.execute(
                select(col(SubjectKey.wrapped_key)).where(col(SubjectKey.subject) == "u1")
            )
        ).scalar_one()
    assert len(data_key) == 32
    assert wrapped is not None and data_key not in wrapped
    await db.dispose()

    raw = b"".join(
        path.read_bytes() for path in (tmp_path / "t.db", tmp_path / "t.db-wal") if path.exists()
    )
    assert b"u1" in raw  # sanity: we are reading the right file
    assert phone.encode() not in raw
    assert b"13800138000" not in raw
    assert data_key not in raw


@pytest.mark.obligation("OB-4-7")
async def test_other_field_or_subject_or_tampering_is_refused(
    db: Database, cipher: FieldCipher
) -> None:
    async with db.session() as session:
        token = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
        await cipher.encrypt(session, subject="u2", value="Li Na", context=NAME)

    async with db.session() as session:
        with pytest.raises(DecryptionFailed):
            await cipher.decrypt(session, subject="u1", token=token, context=PHONE)
        with pytest.raises(DecryptionFailed):
            await cipher.decrypt(session, subject="u2", token=token, context=NAME)
        with pytest.raises(DecryptionFailed, match="no encryption key"):
            await cipher.decrypt(session, subject="nobody", token=token, context=NAME)

        middle = len(token) // 2
        flipped = "A" if token[middle] != "A" else "B"
        tampered = token[:middle] + flipped + token[middle + 1 :]
        for bad in (tampered, token[:-4], "v1.", "v1.not base64!", "v2." + token[3:], "hello"):
            with pytest.raises(DecryptionFailed) as caught:
                await cipher.decrypt(session, subject="u1", token=bad, context=NAME)
            assert caught.value.status == 500
            assert caught.value.code == "decryption-failed"
        # The genuine token still works.
        assert await cipher.decrypt(session, subject="u1", token=token, context=NAME) == (
            "Zhang Wei"
        )


@pytest.mark.obligation("OB-4-7")
async def test_another_master_key_cannot_decrypt(db: Database, cipher: FieldCipher) -> None:
    other = FieldCipher(bytes(reversed(range(32))))
    async with db.session() as session:
        token = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
        # Even within the same session (where keys are cached), the other cipher fails.
        with pytest.raises(DecryptionFailed):
            await other.decrypt(session, subject="u1", token=token, context=NAME)
    async with db.session() as session:
        with pytest.raises(DecryptionFailed):
            await other.decrypt(session, subject="u1", token=token, context=NAME)
    with pytest.raises(ValueError):
        FieldCipher(b"too short")


@pytest.mark.obligation("OB-R-1")
async def test_shredding_erases_the_subjects_data_only(db: Database, cipher: FieldCipher) -> None:
    async with db.session() as session:
        erased = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
        kept = await cipher.encrypt(session, subject="u2", value="Li Na", context=NAME)

    async with db.session() as session:
        assert await cipher.shred(session, subject="u1") is True
        # Takes effect at once, in the same session...
        with pytest.raises(SubjectKeyShredded):
            await cipher.decrypt(session, subject="u1", token=erased, context=NAME)

    # ...and in every later one.
    async with db.session() as session:
        with pytest.raises(SubjectKeyShredded) as caught:
            await cipher.decrypt(session, subject="u1", token=erased, context=NAME)
        assert caught.value.status == 410
        assert caught.value.code == "subject-key-shredded"
        assert "erased" in caught.value.detail
        with pytest.raises(SubjectKeyShredded):
            await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
        assert await cipher.decrypt(session, subject="u2", token=kept, context=NAME) == "Li Na"

    # Idempotent, and a subject that never had a key gets a tombstone.
    async with db.session() as session:
        assert await cipher.shred(session, subject="u1") is False
        assert await cipher.shred(session, subject="never") is False
        with pytest.raises(SubjectKeyShredded):
            await cipher.encrypt(session, subject="never", value="x", context=NAME)
    async with db.session() as session:
        rows = (await session.execute(select(SubjectKey).order_by(col(SubjectKey.subject)))).all()
        state = {row[0].subject: (row[0].wrapped_key, row[0].shredded_at) for row in rows}
    assert state["u1"][0] is None and state["u1"][1] is not None
    assert state["never"][0] is None and state["never"][1] is not None
    assert state["u2"][0] is not None and state["u2"][1] is None


@pytest.mark.obligation("OB-4-7")
async def test_shred_in_another_session_takes_effect_in_an_open_one(
    db: Database, cipher: FieldCipher
) -> None:
    async with db.session() as session:
        token = await cipher.encrypt(session, subject="u1", value="Zhang Wei", context=NAME)
    async with db.sessionmaker() as reader:
        assert await cipher.decrypt(reader, subject="u1", token=token, context=NAME) == (
            "Zhang Wei"
        )
        await reader.commit()
        async with db.session() as shredder:
            assert await cipher.shred(shredder, subject="u1") is True
        with pytest.raises(SubjectKeyShredded):
            await cipher.decrypt(reader, subject="u1", token=token, context=NAME)


@pytest.mark.obligation("OB-4-7")
async def test_blind_index_is_deterministic_keyed_and_per_field(cipher: FieldCipher) -> None:
    value = "13800138000"
    index = cipher.blind_index(value, context=PHONE)
    assert index == cipher.blind_index(value, context=PHONE)
    assert index == cipher.blind_index(f"  {value}\n", context=PHONE)
    full_width = "".join(chr(ord(digit) - ord("0") + 0xFF10) for digit in value)
    assert full_width != value
    assert index == cipher.blind_index(full_width, context=PHONE)  # NFKC folds the width
    assert index == FieldCipher(MASTER_KEY).blind_index(value, context=PHONE)
    assert index != cipher.blind_index("13800138001", context=PHONE)
    assert index != cipher.blind_index(value, context=NAME)
    assert index != FieldCipher(bytes(reversed(range(32)))).blind_index(value, context=PHONE)
    assert index != hashlib.sha256(value.encode()).hexdigest()
    assert index != hashlib.sha256(f"{PHONE}{value}".encode()).hexdigest()
    assert len(index) == 64 and int(index, 16) >= 0


async def test_racing_first_encryptions_end_with_one_key(db: Database, cipher: FieldCipher) -> None:
    async with db.sessionmaker() as first, db.sessionmaker() as second:
        # Hold the first session's write transaction open, then create the key in it.
        await cipher.shred(first, subject="someone-else")
        token_one = await cipher.encrypt(first, subject="u1", value="one", context=NAME)
        # The second session sees no committed key and tries to insert its own, racing the
        # first: however they interleave, the end is one key that opens both (below).
        racing = asyncio.create_task(
            cipher.encrypt(second, subject="u1", value="two", context=NAME)
        )
        await first.commit()
        token_two = await racing
        await second.commit()

    async with db.session() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(SubjectKey).where(col(SubjectKey.subject) == "u1")
            )
        ).scalar_one()
        assert count == 1
        assert await cipher.decrypt(session, subject="u1", token=token_one, context=NAME) == "one"
        assert await cipher.decrypt(session, subject="u1", token=token_two, context=NAME) == "two"


async def test_concurrent_sessions_share_one_key(db: Database, cipher: FieldCipher) -> None:
    async def encrypt(value: str) -> str:
        async with db.session() as session:
            return await cipher.encrypt(session, subject="u9", value=value, context=NAME)

    tokens = await asyncio.gather(*(encrypt(f"value {n}") for n in range(5)))
    async with db.session() as session:
        for n, token in enumerate(tokens):
            assert await cipher.decrypt(session, subject="u9", token=token, context=NAME) == (
                f"value {n}"
            )


@pytest.mark.integration
@pytest.mark.obligation("OB-4-7")
async def test_postgresql_tables_hold_no_plaintext_and_shredding_holds_there(
    pg_url: str, cipher: FieldCipher
) -> None:
    database = Database(pg_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
        await connection.execute(text("CREATE TABLE stored (subject text, phone text)"))
    phone = "13812345678"
    async with database.session() as session:
        token = await cipher.encrypt(session, subject="acc_pg", value=phone, context=PHONE)
        await session.execute(
            text("INSERT INTO stored VALUES (:subject, :phone)"),
            {"subject": "acc_pg", "phone": token},
        )
    async with database.engine.connect() as connection:
        raw_rows = [
            row[0]
            for table in ("stored", "subject_key")
            for row in await connection.execute(text(f"SELECT t::text FROM {table} t"))
        ]
    assert raw_rows and not any(phone in row for row in raw_rows)
    async with database.session() as session:
        assert await cipher.shred(session, subject="acc_pg")
    async with database.session() as session:
        stored = await session.scalar(text("SELECT phone FROM stored"))
        with pytest.raises(SubjectKeyShredded):
            await cipher.decrypt(session, subject="acc_pg", token=stored, context=PHONE)
    await database.dispose()
