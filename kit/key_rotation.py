"""``python -m kit.key_rotation rotate-master-key --app <app>``: rewrap an app's subject keys
with its current master key, online.

How a rotation goes (README "Rotating the master key"): give the app a new
``<APP>_MASTER_KEY`` with ``<APP>_MASTER_KEY_VERSION`` one higher, the old key in
``<APP>_PREVIOUS_MASTER_KEYS`` (``{"1": "<old base64>"}``), restart it (it now wraps new keys
with the new one and reads both), then run this command: it rewraps every older subject key
in short transactions while the app serves, and prints how many. Data itself is never
re-encrypted: every value written before reads as before. Afterwards an older key other than
version 1 (which keys the blind index) may leave the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

from kit.crypto import rotate_master_key
from kit.db import Database
from kit.settings import EncryptingSettings

APPS = ("identity", "orders", "consent", "transfer")


async def rotate(settings: EncryptingSettings, *, batch_size: int) -> int:
    database = Database(settings.database_url)
    try:
        return await rotate_master_key(database, settings.field_cipher(), batch_size=batch_size)
    finally:
        await database.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.key_rotation", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "rotate-master-key", help="rewrap every subject key with the current master key"
    )
    command.add_argument("--app", required=True, choices=APPS)
    command.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args(argv)
    settings_class = importlib.import_module(f"services.{args.app}.config").Settings
    settings: EncryptingSettings = settings_class()
    rewrapped = asyncio.run(rotate(settings, batch_size=args.batch_size))
    print(
        f"{args.app}: {rewrapped} subject keys rewrapped with master key version "
        f"{settings.master_key_version}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
