"""``python -m kit.migrations``: upgrade apps' databases, or write a new revision."""

from __future__ import annotations

import argparse
import asyncio
import importlib

from alembic import command
from alembic.script import ScriptDirectory

from kit.migrations import alembic_config, app_versions_dir, upgrade
from kit.settings import ServiceSettings


def database_url(app_package: str) -> str:
    settings_class: type[ServiceSettings] = importlib.import_module(
        f"{app_package}.config"
    ).Settings
    return settings_class().database_url


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kit.migrations")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="apply every pending revision")
    up.add_argument("apps", nargs="+", help="app packages, e.g. services.orders gateway")
    rev = commands.add_parser("revision", help="autogenerate a revision for one app")
    rev.add_argument("app")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args()

    if args.command == "upgrade":
        for app in args.apps:
            asyncio.run(upgrade(app, database_url(app)))
            print(f"{app}: schema up to date")
    else:
        write_revision(args.app, args.message)


def write_revision(app_package: str, message: str) -> None:
    """Autogenerate a revision on the app's own branch (named by the package's last part)."""
    config = alembic_config(app_package, database_url(app_package))
    branch = app_package.rsplit(".", 1)[-1]
    scripts = ScriptDirectory.from_config(config)
    has_branch = any(branch in (rev.branch_labels or ()) for rev in scripts.walk_revisions())
    command.revision(
        config,
        message=message,
        autogenerate=True,
        head=f"{branch}@head" if has_branch else "base",
        branch_label=None if has_branch else branch,
        version_path=str(app_versions_dir(app_package)),
    )


if __name__ == "__main__":
    main()
