"""``python -m services.identity``: operator commands.

- ``create-admin --phone P [--role R ...]``: the first staff account. The password is read
  from ``IDENTITY_ADMIN_PASSWORD`` or asked for twice on the terminal; there is no default.
- ``rotate-key``: retire the signing key now and start a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from kit.catalogue import load_catalogue
from kit.crypto import FieldCipher
from kit.db import Database
from kit.outbox import EventWriter
from services.identity.accounts.service import create_staff
from services.identity.config import Settings
from services.identity.tokens.service import rotate_signing_key


def _password() -> str:
    if password := os.environ.get("IDENTITY_ADMIN_PASSWORD"):
        return password
    if not sys.stdin.isatty():
        raise SystemExit("set IDENTITY_ADMIN_PASSWORD or run on a terminal")
    first = getpass.getpass("password for the new admin: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the passwords differ")
    return first


async def _create_admin(settings: Settings, phone: str, roles: list[str]) -> None:
    database = Database(settings.database_url)
    catalogue = load_catalogue(settings.catalogue_path)
    events = EventWriter(
        source="/identity",
        topic=settings.events_topic,
        personal_fields=catalogue.personal_field_names(),
    )
    try:
        async with database.session() as session:
            created = await create_staff(
                session,
                cipher=FieldCipher(settings.master_key_bytes),
                events=events,
                phone=phone,
                password=_password(),
                roles=roles,
                granted_by="cli",
            )
    finally:
        await database.dispose()
    print(f"staff account {created.account_id} created with roles {', '.join(created.roles)}")


async def _rotate(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            key = await rotate_signing_key(
                session, cipher=FieldCipher(settings.master_key_bytes), settings=settings
            )
    finally:
        await database.dispose()
    print(
        f"new signing key {key.kid} ({key.alg}); the old one stays published until its "
        "tokens expire"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.identity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("create-admin", help="create a staff account")
    admin.add_argument("--phone", required=True)
    admin.add_argument(
        "--role",
        action="append",
        dest="roles",
        choices=["privacy_officer", "customer_service", "security"],
    )
    commands.add_parser("rotate-key", help="rotate the token signing key")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "create-admin":
        asyncio.run(_create_admin(settings, args.phone, args.roles or ["privacy_officer"]))
    else:
        asyncio.run(_rotate(settings))
