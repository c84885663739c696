"""``python -m services.orders sweep``: run the retention sweep once, now, and print what it
did (JSON). Uses the app's settings (``ORDERS_*``); the database must be migrated. Its
events wait in the outbox until a relay (the running app, or ``python -m kit.outbox``)
publishes them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from kit.catalogue import load_catalogue
from kit.db import Database
from kit.outbox import EventWriter
from services.orders.config import Settings
from services.orders.retention.schemas import SweepReport
from services.orders.retention.service import check_catalogue, run_sweep


async def sweep(settings: Settings) -> SweepReport:
    catalogue = load_catalogue(settings.catalogue_path)
    check_catalogue(catalogue)
    events = EventWriter(
        source=f"/{settings.service_name}",
        topic=settings.events_topic,
        personal_fields=catalogue.personal_field_names(),
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.orders")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sweep", help="delete expired personal fields, anonymise orders")
    parser.parse_args(argv)
    report = asyncio.run(sweep(Settings()))
    sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
