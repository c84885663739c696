"""Hashing of passwords and client secrets (argon2id), and random secrets and ids.

One hasher for the whole service, so that its parameters (and their upgrades through
``needs_rehash``) live in one place.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when no account matches, so a wrong phone costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret: str, hashed: str | None) -> bool:
    """Whether ``secret`` matches ``hashed``; with no hash, spend the same time and fail."""
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, secret) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def fingerprint(token: str) -> str:
    """How an opaque, high-entropy token is stored: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()
