"""``python -m services.identity``: operator commands.

- ``create-admin --phone P [--role R ...]``: the first staff account. The password is read
  from ``IDENTITY_ADMIN_PASSWORD`` or asked for twice on the terminal; there is no default.
- ``rotate-key``: retire the signing key now and start a new one.
- ``create-service-client --name N --scope service:<purpose> [--scope ...]``: an internal
  service's OAuth2 client; prints its client id (``svc_...``) and its secret, once (only
  the hash is stored). There is no HTTP route for this.
- ``revoke-service-client --client-id svc_...``: no new tokens for that client.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from kit.auth import SERVICE_SCOPES, STAFF_ROLE_SCOPES
from kit.catalogue import load_catalogue
from kit.db import Database
from kit.errors import DomainError
from kit.outbox import EventWriter
from services.identity.accounts.service import create_staff
from services.identity.config import Settings
from services.identity.service_clients.service import (
    create_service_client,
    revoke_service_client,
)
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


def _events(settings: Settings) -> EventWriter:
    catalogue = load_catalogue(settings.catalogue_path)
    return EventWriter(
        source="/identity",
        topic=settings.events_topic,
        personal_fields=catalogue.personal_field_names(),
    )


async def _create_admin(settings: Settings, phone: str, roles: list[str]) -> None:
    database = Database(settings.database_url)
    events = _events(settings)
    try:
        async with database.session() as session:
            created = await create_staff(
                session,
                cipher=settings.field_cipher(),
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
                session, cipher=settings.field_cipher(), settings=settings
            )
    finally:
        await database.dispose()
    print(
        f"new signing key {key.kid} ({key.alg}); the old one stays published until its "
        "tokens expire"
    )


async def _create_service_client(settings: Settings, name: str, scopes: list[str]) -> None:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            created = await create_service_client(
                session,
                events=_events(settings),
                catalogue=load_catalogue(settings.catalogue_path),
                name=name,
                scopes=scopes,
            )
    except DomainError as exc:
        raise SystemExit(f"refused: {exc}") from None
    finally:
        await database.dispose()
    print(f"service client {created.name} created with scopes {' '.join(created.scopes)}")
    print(f"client_id: {created.client_id}")
    print(f"client_secret: {created.client_secret}")
    print("the secret is shown only now: give it to the service's settings")


async def _revoke_service_client(settings: Settings, client_id: str) -> None:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            await revoke_service_client(session, events=_events(settings), client_id=client_id)
    except DomainError as exc:
        raise SystemExit(f"refused: {exc}") from None
    finally:
        await database.dispose()
    print(f"service client {client_id} revoked; its tokens live until they expire")


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
        choices=sorted(STAFF_ROLE_SCOPES),
    )
    commands.add_parser("rotate-key", help="rotate the token signing key")
    service = commands.add_parser(
        "create-service-client", help="register an internal service's OAuth2 client"
    )
    service.add_argument("--name", required=True)
    service.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        required=True,
        help="a service scope: " + ", ".join(sorted(SERVICE_SCOPES)),
    )
    revoke = commands.add_parser("revoke-service-client", help="revoke a service client")
    revoke.add_argument("--client-id", required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "create-admin":
        asyncio.run(_create_admin(settings, args.phone, args.roles or ["privacy_officer"]))
    elif args.command == "create-service-client":
        asyncio.run(_create_service_client(settings, args.name, args.scopes))
    elif args.command == "revoke-service-client":
        asyncio.run(_revoke_service_client(settings, args.client_id))
    else:
        asyncio.run(_rotate(settings))
