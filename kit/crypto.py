"""Field encryption: per-subject AES-GCM data keys, blind indexes, crypto-shredding.

- :class:`FieldCipher` is built from the 32-byte master key (``settings.master_key_bytes``)
  and its version, plus the older master keys by version while a rotation is under way.
  HKDF-SHA256 derives from each a key-encryption key (KEK) that wraps the data keys, and
  from the master key of version 1 the blind-index key (so indexes stay valid across
  rotations; without version 1, :meth:`FieldCipher.blind_index` is refused). The master key
  itself encrypts nothing.
- Each wrapped data key records the version of the master key that wrapped it; new keys are
  wrapped by the current one. :func:`rotate_master_key` (``python -m kit.key_rotation
  rotate-master-key --app <app>``) rewraps, in short transactions while the app serves, every
  key of an older version with the current one; data is never re-encrypted (the data keys
  stay), so everything written before reads as before. Once it reports none left, the old
  key may leave the settings (keep version 1 for the blind index).
- Each subject (a user, usually) has one random 256-bit data key, stored in the kit's
  ``subject_key`` table wrapped with AES-GCM under the KEK (associated data: the subject).
  :meth:`FieldCipher.encrypt` creates it on first use; two sessions racing to create it end
  with one key (the loser's insert fails inside a SAVEPOINT and it re-reads the winner's).
- A value is encrypted with AES-GCM under its subject's data key, a random 96-bit nonce and
  associated data ``"{context}|{subject}"``, where ``context`` names the field (such as
  ``"orders.order.consignee_name"``). A ciphertext copied to another field or another
  subject therefore fails to decrypt. Tokens are text: ``"v1." + base64url(nonce + ct)``
  without padding.
- :meth:`FieldCipher.shred` erases a subject's data key (the row stays, ``wrapped_key``
  NULL, as a tombstone). Every value encrypted for the subject is then unreadable:
  decrypting raises :class:`SubjectKeyShredded` (410), and encrypting for the subject again
  is refused rather than silently starting a new key.
- :meth:`FieldCipher.blind_index` is an HMAC-SHA256 of a normalised value, so equal values
  can be looked up without being stored in clear.
- A failed authentication (tampered token, wrong field, wrong subject, wrong master key) is
  :class:`DecryptionFailed` (500), never garbage output.
- Unwrapped data keys are cached in ``session.info`` only until the session's current
  transaction (or savepoint) ends, never across sessions, so a shred made elsewhere takes
  effect at the next transaction.
- A read without a session (``Database.reads``, Core statements) selects the subject's
  key row with its data (:data:`SUBJECT_KEY_COLUMNS`, joined on the subject) and decrypts
  with :meth:`FieldCipher.opener`: the same checks and errors as :meth:`FieldCipher.decrypt`,
  the key unwrapped once for all the fields of the rows read.
- A write that encrypts several values of one subject takes a :class:`FieldSealer`
  (:meth:`FieldCipher.sealer`): the data key found (or created) and unwrapped once, then
  each value sealed without the database. The key row may come from a Core read that
  selected :data:`SUBJECT_KEY_COLUMNS` beside other data, saving the key's own query.
"""

from __future__ import annotations

import base64
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from kit.db import Database
from kit.errors import DomainError
from kit.models import SubjectKey, utcnow

__all__ = [
    "SUBJECT_KEYS",
    "SUBJECT_KEY_COLUMNS",
    "TOKEN_PREFIX",
    "DecryptionFailed",
    "FieldCipher",
    "FieldOpener",
    "FieldSealer",
    "SubjectKeyShredded",
    "rotate_master_key",
]

TOKEN_PREFIX: Final = "v1."
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16

_KEK_INFO: Final = b"kit.crypto.v1.key-encryption-key"
_BLIND_INDEX_INFO: Final = b"kit.crypto.v1.blind-index-key"
_TOKEN_BODY: Final = re.compile(r"[A-Za-z0-9_-]+")

# session.info keys: the per-transaction key cache and the flag that its listener is set.
_CACHE: Final = "kit.crypto.data_keys"
_LISTENING: Final = "kit.crypto.listening"


class SubjectKeyShredded(DomainError):
    """The subject's key was shredded: its encrypted data was erased for good."""

    status, code, title = 410, "subject-key-shredded", "Data erased"


class DecryptionFailed(DomainError):
    """A ciphertext did not authenticate (tampered, moved, or another key) or has no key."""

    status, code, title = 500, "decryption-failed", "Decryption failed"


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        master_key
    )


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _TOKEN_BODY.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_context(context: str) -> None:
    if not context or "|" in context:
        raise ValueError("context must be a non-empty field name without '|'")


def _ciphertext(token: str) -> bytes:
    """The nonce, ciphertext and tag of a token; :class:`DecryptionFailed` if malformed."""
    if not token.startswith(TOKEN_PREFIX):
        raise DecryptionFailed("the encrypted value is not a recognised token")
    try:
        raw = _b64decode(token[len(TOKEN_PREFIX) :])
    except ValueError as exc:
        raise DecryptionFailed("the encrypted value is not a recognised token") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionFailed("the encrypted value is truncated")
    return raw


def _open(aead: AESGCM, raw: bytes, aad: bytes) -> str:
    try:
        plaintext = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise DecryptionFailed(
            "the encrypted value failed authentication (tampered, or not for this "
            "field and subject)"
        ) from exc
    return plaintext.decode("utf-8")


#: The ``subject_key`` table, for Core reads that join it (:data:`SUBJECT_KEY_COLUMNS`).
SUBJECT_KEYS: Final = SubjectKey.__table__  # type: ignore[attr-defined]
#: What a Core read selects beside a subject's data (outer-joined on the subject) to give
#: :meth:`FieldCipher.opener` the key: whether the row exists, the wrapped key, its version.
SUBJECT_KEY_COLUMNS: Final = (
    SUBJECT_KEYS.c.subject.label("subject_key_subject"),
    SUBJECT_KEYS.c.wrapped_key.label("subject_key_wrapped"),
    SUBJECT_KEYS.c.key_version.label("subject_key_version"),
)


class FieldOpener:
    """Decrypts one subject's values with the key row read beside them; the key is
    unwrapped at the first value (a subject without a key or with a shredded one raises
    only when there is something to decrypt, as :meth:`FieldCipher.decrypt` does)."""

    def __init__(self, cipher: FieldCipher, subject: str, row: Any) -> None:
        self._cipher = cipher
        self.subject = subject
        self._found = row.subject_key_subject is not None
        self._wrapped: bytes | None = row.subject_key_wrapped
        self._version: int = row.subject_key_version or 0
        self._aead: AESGCM | None = None

    def decrypt(self, token: str, *, context: str) -> str:
        _check_context(context)
        raw = _ciphertext(token)
        if self._aead is None:
            if not self._found:
                raise DecryptionFailed("no encryption key exists for this subject")
            if self._wrapped is None:
                raise SubjectKeyShredded(
                    "this data was erased: the subject's encryption key was shredded"
                )
            key = self._cipher._unwrap(self.subject, self._wrapped, self._version)
            self._aead = AESGCM(key)
        return _open(self._aead, raw, FieldCipher._aad(context, self.subject))


class FieldSealer:
    """Encrypts values for one subject with its data key, unwrapped once
    (:meth:`FieldCipher.sealer`); tokens as :meth:`FieldCipher.encrypt` makes them."""

    def __init__(self, subject: str, key: bytes) -> None:
        self.subject = subject
        self._aead = AESGCM(key)

    def encrypt(self, value: str, *, context: str) -> str:
        _check_context(context)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(
            nonce, value.encode("utf-8"), FieldCipher._aad(context, self.subject)
        )
        return TOKEN_PREFIX + _b64encode(nonce + sealed)


def _forget_keys(session: Session, _transaction: Any) -> None:
    """Drop cached data keys whenever a transaction or savepoint of the session ends."""
    session.info.pop(_CACHE, None)


class FieldCipher:
    """Encrypts and decrypts field values under per-subject keys wrapped by the master key."""

    def __init__(
        self, master_key: bytes, *, version: int = 1, previous: Mapping[int, bytes] | None = None
    ) -> None:
        keys = {**(previous or {}), version: master_key}
        if any(len(key) != KEY_BYTES for key in keys.values()):
            raise ValueError("master_key must be 32 bytes (AES-256)")
        if version < 1 or any(old >= version for old in previous or {}):
            raise ValueError("previous master keys have versions below the current one")
        self.version = version
        self._keks = {number: AESGCM(_derive(key, _KEK_INFO)) for number, key in keys.items()}
        self._blind_index_key = _derive(keys[1], _BLIND_INDEX_INFO) if 1 in keys else None

    # -- public API -------------------------------------------------------------------------

    async def encrypt(
        self, session: AsyncSession, *, subject: str, value: str, context: str
    ) -> str:
        """``value`` encrypted for ``subject`` in the field ``context``, as a text token."""
        _check_context(context)
        sealer = await self.sealer(session, subject=subject)
        return sealer.encrypt(value, context=context)

    async def sealer(
        self, session: AsyncSession, *, subject: str, key_row: Any = None
    ) -> FieldSealer:
        """An encrypter of ``subject``'s values, its data key created first if none exists.
        ``key_row``: a row that selected :data:`SUBJECT_KEY_COLUMNS` joined on the subject
        in this transaction (then the key is not read again); a shredded key is refused
        (:class:`SubjectKeyShredded`) either way."""
        cache = self._cache(session)
        key = cache.get(subject)
        if key is None and key_row is not None and key_row.subject_key_subject is not None:
            wrapped: bytes | None = key_row.subject_key_wrapped
            if wrapped is None:
                raise SubjectKeyShredded(
                    "this data was erased: the subject's encryption key was shredded"
                )
            key = cache[subject] = self._unwrap(subject, wrapped, key_row.subject_key_version)
        if key is None:
            key = await self._data_key(session, subject=subject, create=True)
        return FieldSealer(subject, key)

    async def decrypt(
        self, session: AsyncSession, *, subject: str, token: str, context: str
    ) -> str:
        """The value in ``token``. Raises :class:`SubjectKeyShredded` if the subject's key
        was shredded and :class:`DecryptionFailed` if the token does not authenticate."""
        _check_context(context)
        raw = _ciphertext(token)
        key = await self._data_key(session, subject=subject, create=False)
        return _open(AESGCM(key), raw, self._aad(context, subject))

    def opener(self, subject: str, row: Any) -> FieldOpener:
        """A decrypter of ``subject``'s values, given a row that selected
        :data:`SUBJECT_KEY_COLUMNS` joined on that subject (no session: a Core read)."""
        return FieldOpener(self, subject, row)

    async def shred(self, session: AsyncSession, *, subject: str) -> bool:
        """Erase ``subject``'s data key, leaving a tombstone. Returns whether a key existed.
        Idempotent: shredding again keeps the first ``shredded_at`` and returns False."""
        self._cache(session).pop(subject, None)
        for _attempt in range(3):
            result = await session.execute(
                update(SubjectKey)
                .where(
                    col(SubjectKey.subject) == subject,
                    col(SubjectKey.wrapped_key).is_not(None),
                )
                .values(wrapped_key=None, shredded_at=utcnow())
            )
            assert isinstance(result, CursorResult)
            if result.rowcount:
                return True
            exists, _wrapped, _version = await self._read(session, subject)
            if exists:
                return False  # already a tombstone
            try:
                async with session.begin_nested():
                    now = utcnow()
                    await session.execute(
                        insert(SubjectKey).values(
                            subject=subject, wrapped_key=None, created_at=now, shredded_at=now
                        )
                    )
            except IntegrityError:
                continue  # a key (or tombstone) was created meanwhile: shred that
            return False
        raise RuntimeError("could not shred the subject key under concurrent updates")

    def blind_index(self, value: str, *, context: str) -> str:
        """A keyed, deterministic index of ``value`` (NFKC-normalised and stripped) for the
        field ``context``: equal values give equal indexes; other fields give other ones."""
        _check_context(context)
        if self._blind_index_key is None:
            raise RuntimeError("the blind index needs the master key of version 1")
        normalised = unicodedata.normalize("NFKC", value).strip()
        mac = hmac.HMAC(self._blind_index_key, hashes.SHA256())
        mac.update(context.encode("utf-8") + b"\x00" + normalised.encode("utf-8"))
        return mac.finalize().hex()

    # -- data keys --------------------------------------------------------------------------

    @staticmethod
    def _aad(context: str, subject: str) -> bytes:
        return f"{context}|{subject}".encode()

    def _cache(self, session: AsyncSession) -> dict[str, bytes]:
        """This cipher's unwrapped keys, for the session's current transaction only."""
        info = session.info
        if not info.get(_LISTENING):
            event.listen(session.sync_session, "after_transaction_end", _forget_keys)
            info[_LISTENING] = True
        per_cipher: dict[FieldCipher, dict[str, bytes]] = info.setdefault(_CACHE, {})
        return per_cipher.setdefault(self, {})

    @staticmethod
    async def _read(session: AsyncSession, subject: str) -> tuple[bool, bytes | None, int]:
        """Whether the subject has a row, its wrapped key (None once shredded) and the
        version of the master key that wrapped it."""
        row = (
            await session.execute(
                select(col(SubjectKey.wrapped_key), col(SubjectKey.key_version)).where(
                    col(SubjectKey.subject) == subject
                )
            )
        ).first()
        return (False, None, 0) if row is None else (True, row[0], row[1])

    def _unwrap(self, subject: str, wrapped: bytes, version: int) -> bytes:
        kek = self._keks.get(version)
        if kek is None:
            raise DecryptionFailed(
                f"the subject's key is wrapped by master key version {version}, "
                "which is not configured"
            )
        try:
            return kek.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], subject.encode("utf-8")
            )
        except (InvalidTag, ValueError) as exc:  # ValueError: a truncated stored key
            raise DecryptionFailed(
                "the subject's key could not be unwrapped (another master key?)"
            ) from exc

    def _wrap(self, subject: str, key: bytes) -> bytes:
        """``key`` wrapped by the current master key (version :attr:`version`)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._keks[self.version].encrypt(nonce, key, subject.encode("utf-8"))

    async def rewrap(self, session: AsyncSession, *, batch_size: int) -> int:
        """Rewrap up to ``batch_size`` subject keys of older master key versions with the
        current one; returns how many. Rows are locked (skipped if another rotation holds
        them) so a concurrent shred or rotation is never overwritten."""
        rows = (
            await session.execute(
                select(SubjectKey)
                .where(
                    col(SubjectKey.wrapped_key).is_not(None),
                    col(SubjectKey.key_version) != self.version,
                )
                .order_by(col(SubjectKey.subject))
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        count = 0
        for row in rows:
            assert row.wrapped_key is not None
            key = self._unwrap(row.subject, row.wrapped_key, row.key_version)
            row.wrapped_key = self._wrap(row.subject, key)
            row.key_version = self.version
            count += 1
        await session.flush()
        return count

    async def _data_key(self, session: AsyncSession, *, subject: str, create: bool) -> bytes:
        """The subject's unwrapped data key, created first if ``create`` and none exists."""
        cached = self._cache(session).get(subject)
        if cached is not None:
            return cached
        for _attempt in range(3):
            exists, wrapped, version = await self._read(session, subject)
            if exists:
                if wrapped is None:
                    raise SubjectKeyShredded(
                        "this data was erased: the subject's encryption key was shredded"
                    )
                key = self._unwrap(subject, wrapped, version)
                break
            if not create:
                raise DecryptionFailed("no encryption key exists for this subject")
            key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            try:
                async with session.begin_nested():
                    await session.execute(
                        insert(SubjectKey).values(
                            subject=subject,
                            wrapped_key=self._wrap(subject, key),
                            key_version=self.version,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError:
                continue  # another session created it first: use theirs
            break
        else:
            raise RuntimeError("could not create the subject key under concurrent inserts")
        self._cache(session)[subject] = key
        return key


async def rotate_master_key(
    database: Database, cipher: FieldCipher, *, batch_size: int = 500
) -> int:
    """Rewrap every subject key of an older master key version with ``cipher``'s current
    one, one short transaction per batch while the app keeps serving; returns how many."""
    total = 0
    while True:
        async with database.session() as session:
            done = await cipher.rewrap(session, batch_size=batch_size)
        total += done
        if done < batch_size:
            return total
