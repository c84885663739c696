"""Alembic migrations for every app, from one environment.

Each app (``services.orders``, ``gateway``, ...) keeps its own revisions in
``<app>/migrations/versions`` and its tables in ``<app>.models.registry``; the kit's tables
(outbox, processed events, subject keys) have one revision branch, ``kit``, in
``kit/migrations/versions``. An app's database is upgraded to the heads of both.

- :func:`upgrade` applies them from async code (tests, start-up);
- ``python -m kit.migrations upgrade services.orders gateway ...`` from the shell;
- ``python -m kit.migrations revision services.orders -m "add carts"`` autogenerates one.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData

from kit.db import Database
from kit.models import kit_registry

KIT_MIGRATIONS = Path(__file__).resolve().parent


def app_metadata(app_package: str) -> MetaData:
    """The metadata of an app's own tables: ``<app>.models.registry.metadata``."""
    models = importlib.import_module(f"{app_package}.models")
    metadata: MetaData = models.registry.metadata
    return metadata


def app_versions_dir(app_package: str) -> Path:
    package = importlib.import_module(app_package)
    assert package.__file__ is not None
    return Path(package.__file__).resolve().parent / "migrations" / "versions"


def alembic_config(app_package: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(KIT_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations",
        os.pathsep.join([str(KIT_MIGRATIONS / "versions"), str(app_versions_dir(app_package))]),
    )
    config.attributes["database_url"] = url
    config.attributes["target_metadata"] = [kit_registry.metadata, app_metadata(app_package)]
    config.attributes["app_package"] = app_package
    return config


async def upgrade(app_package: str, url: str, revision: str = "heads") -> None:
    """Bring ``url``'s schema up to date for ``app_package`` (kit tables included)."""
    database = Database(url)
    config = alembic_config(app_package, url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await database.dispose()
