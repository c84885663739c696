"""Identifiers that carry no meaning: pseudonymous account ids, order numbers, receipts."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """An unguessable id such as ``ord_3J...`` (128 random bits). Letters are mixed in and
    ``-``/``_`` replaced, so it never looks like a phone or ID number and never needs
    escaping."""
    return f"{prefix}_{secrets.token_urlsafe(16).replace('-', 'x').replace('_', 'y')}"
