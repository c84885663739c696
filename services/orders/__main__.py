"""``python -m services.orders sweep``: run the retention sweep once, now, and print what it
did (JSON). ``python -m services.orders set-up-payment-provider --provider-id ID --name NAME
--api-url URL --public-key-file PEM``: set up a payment provider once (as staff do through
the gateway; ``make run`` sets up the stand-in provider this way) and print the shop's public
key for it (PEM). Uses the app's settings (``ORDERS_*``); the database must be migrated.
Events wait in the outbox until a relay (the running app, or ``python -m kit.outbox``)
publishes them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from kit.catalogue import Catalogue, load_catalogue
from kit.db import Database
from kit.outbox import EventWriter
from services.orders.config import Settings
from services.orders.payments import service as payments
from services.orders.payments.schemas import ProviderCreate, ProviderView
from services.orders.retention.schemas import SweepReport
from services.orders.retention.service import check_catalogue, run_sweep


def event_writer(settings: Settings, catalogue: Catalogue) -> EventWriter:
    """The app's own event writer, as the running app makes it."""
    return EventWriter(
        source=f"/{settings.service_name}",
        topic=settings.events_topic,
        personal_fields=catalogue.personal_field_names(),
    )


async def sweep(settings: Settings) -> SweepReport:
    catalogue = load_catalogue(settings.catalogue_path)
    check_catalogue(catalogue)
    events = event_writer(settings, catalogue)
    database = Database(settings.database_url)
    try:
        return await run_sweep(
            database,
            events=events,
            catalogue=catalogue,
            batch_size=settings.retention_sweep_batch_size,
        )
    finally:
        await database.dispose()


async def set_up_provider(settings: Settings, request: ProviderCreate) -> ProviderView:
    events = event_writer(settings, load_catalogue(settings.catalogue_path))
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            return await payments.register_provider(
                session,
                cipher=settings.field_cipher(),
                events=events,
                request=request,
                staff_id="command-line",
            )
    finally:
        await database.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.orders")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sweep", help="delete expired personal fields, anonymise orders")
    provider = commands.add_parser("set-up-payment-provider", help="set up a payment provider")
    provider.add_argument("--provider-id", required=True)
    provider.add_argument("--name", required=True)
    provider.add_argument("--api-url", required=True)
    provider.add_argument("--public-key-file", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "set-up-payment-provider":
        request = ProviderCreate(
            provider_id=args.provider_id,
            name=args.name,
            api_url=args.api_url,
            notification_public_key=args.public_key_file.read_text(),
        )
        view = asyncio.run(set_up_provider(Settings(), request))
        sys.stdout.write(view.shop_public_key)
        return 0
    report = asyncio.run(sweep(Settings()))
    sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
