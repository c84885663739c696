"""Master key rotation (issue 23, item 3): every wrapped subject key records its master key
version; ``rotate-master-key`` rewraps the older ones with the current key while the app
serves, and everything written before reads as before."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from kit.crypto import DecryptionFailed, FieldCipher, SubjectKeyShredded, rotate_master_key
from kit.db import Database
from kit.key_rotation import main as key_rotation
from kit.models import SubjectKey, kit_registry
from kit.settings import EncryptingSettings
from services.orders.config import Settings as OrdersSettings

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(32, 64))
NAME = "orders.order.consignee_name"
SUBJECTS = 23


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
    yield database
    await database.dispose()


async def versions(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(
            select(col(SubjectKey.subject), col(SubjectKey.key_version)).where(
                col(SubjectKey.wrapped_key).is_not(None)
            )
        )
        return {subject: version for subject, version in rows.all()}


async def test_old_data_reads_after_rotation_with_the_new_key_alone(db: Database) -> None:
    old = FieldCipher(OLD_KEY)
    written: dict[str, str] = {}
    async with db.session() as session:
        for n in range(SUBJECTS):
            written[f"acc_{n}"] = await old.encrypt(
                session, subject=f"acc_{n}", value=f"欧阳娜娜 {n}", context=NAME
            )
        await old.shred(session, subject="acc_0")
    assert set((await versions(db)).values()) == {1}

    # The app restarted with the new key (version 2), the old one kept to read meanwhile.
    rotating = FieldCipher(NEW_KEY, version=2, previous={1: OLD_KEY})
    async with db.session() as session:  # new subjects get keys of the new version at once
        fresh = await rotating.encrypt(session, subject="acc_new", value="new", context=NAME)
    rewrapped = await rotate_master_key(db, rotating, batch_size=5)  # several transactions
    assert rewrapped == SUBJECTS - 1  # the shredded key has nothing to rewrap
    assert set((await versions(db)).values()) == {2}
    assert await rotate_master_key(db, rotating) == 0  # nothing left

    # The old master key is no longer needed to read anything.
    new_only = FieldCipher(NEW_KEY, version=2)
    async with db.session() as session:
        for n in range(1, SUBJECTS):
            subject = f"acc_{n}"
            plain = await new_only.decrypt(
                session, subject=subject, token=written[subject], context=NAME
            )
            assert plain == f"欧阳娜娜 {n}"
        assert await new_only.decrypt(session, subject="acc_new", token=fresh, context=NAME) == (
            "new"
        )
        with pytest.raises(SubjectKeyShredded):
            await new_only.decrypt(session, subject="acc_0", token=written["acc_0"], context=NAME)
    # ... and no longer enough: a process still on the old key alone reads nothing.
    async with db.session() as session:
        with pytest.raises(DecryptionFailed, match="version 2"):
            await old.decrypt(session, subject="acc_1", token=written["acc_1"], context=NAME)


def test_the_blind_index_survives_rotation() -> None:
    """Logins find accounts by the phone's blind index: it stays keyed by version 1."""
    before = FieldCipher(OLD_KEY).blind_index("13812345678", context="identity.phone")
    after = FieldCipher(NEW_KEY, version=2, previous={1: OLD_KEY})
    assert after.blind_index("13812345678", context="identity.phone") == before


def test_settings_refuse_versions_that_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    new, old = base64.b64encode(NEW_KEY).decode(), base64.b64encode(OLD_KEY).decode()
    monkeypatch.setenv("ORDERS_MASTER_KEY", new)
    monkeypatch.setenv("ORDERS_MASTER_KEY_VERSION", "2")
    monkeypatch.setenv("ORDERS_PREVIOUS_MASTER_KEYS", "{}")
    with pytest.raises(ValueError, match="version 1"):
        settings_of("orders")
    monkeypatch.setenv("ORDERS_PREVIOUS_MASTER_KEYS", f'{{"2": "{old}"}}')
    with pytest.raises(ValueError, match="below master_key_version"):
        settings_of("orders")
    monkeypatch.setenv("ORDERS_PREVIOUS_MASTER_KEYS", f'{{"1": "{old}"}}')
    assert settings_of("orders").field_cipher().version == 2


def settings_of(app: str) -> EncryptingSettings:
    assert app == "orders"
    return OrdersSettings()


async def test_the_command_rewraps_an_apps_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/orders.db"
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(kit_registry.metadata.create_all)
    async with database.session() as session:
        token = await FieldCipher(OLD_KEY).encrypt(
            session, subject="acc_1", value="欧阳娜娜", context=NAME
        )
    monkeypatch.setenv("ORDERS_DATABASE_URL", url)
    monkeypatch.setenv("ORDERS_MASTER_KEY", base64.b64encode(NEW_KEY).decode())
    monkeypatch.setenv("ORDERS_MASTER_KEY_VERSION", "2")
    monkeypatch.setenv(
        "ORDERS_PREVIOUS_MASTER_KEYS", f'{{"1": "{base64.b64encode(OLD_KEY).decode()}"}}'
    )
    # The command runs its own event loop, as an operator's shell would: in a thread here.
    code = await asyncio.to_thread(key_rotation, ["rotate-master-key", "--app", "orders"])
    assert code == 0
    assert "orders: 1 subject keys rewrapped with master key version 2" in capsys.readouterr().out
    async with database.session() as session:
        plain = await FieldCipher(NEW_KEY, version=2).decrypt(
            session, subject="acc_1", token=token, context=NAME
        )
    assert plain == "欧阳娜娜"
    await database.dispose()
