"""Identifiers that carry no meaning: pseudonymous account ids, order numbers, receipts."""

from __future__ import annotations

import secrets
import string

_LETTERS = string.ascii_lowercase
_LENGTH = 24  # 26**24 > 2**112


def new_id(prefix: str) -> str:
    """An unguessable id such as ``ord_kqzv...``: 24 random lower-case letters (more than
    112 bits). Letters only, so an id never holds a digit run that the event guard would
    take for a phone or ID number, and never needs escaping."""
    return f"{prefix}_" + "".join(secrets.choice(_LETTERS) for _ in range(_LENGTH))
