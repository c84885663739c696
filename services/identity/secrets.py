"""Hashing of passwords and client secrets (argon2id), and random secrets and ids.

One hasher for the whole service, so that its parameters (and their upgrades through
``needs_rehash``) live in one place.

argon2 is slow and memory-hard on purpose (about 50 ms and 64 MiB per hash): hashing and
verifying run in a small thread pool of their own (one thread per CPU, so a burst of logins
queues there instead of taking the memory of dozens of hashes at once), never on the event
loop, which keeps answering every other request meanwhile (argon2-cffi releases the GIL).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when no account matches, so a wrong phone costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
HASHING_THREADS: Final = os.cpu_count() or 1
_pool = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="argon2")


async def hash_secret(secret: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, secret)


def _verify(secret: str, hashed: str | None) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, secret) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_secret(secret: str, hashed: str | None) -> bool:
    """Whether ``secret`` matches ``hashed``; with no hash, spend the same time and fail."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify, secret, hashed)


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def fingerprint(token: str) -> str:
    """How an opaque, high-entropy token is stored: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()
