"""``python -m kit.settings_table``: every setting of every app as one Markdown table,
generated from the settings classes so that README's "Deploying" section cannot drift
(``tests/deploy/test_settings_table.py`` compares the two).

Settings every app shares (:class:`kit.settings.ServiceSettings`) come first, once, as
``<APP>_NAME`` (or ``PRIVACY_NAME`` for all apps at once); then each app's own."""

from __future__ import annotations

import importlib
import sys
from enum import Enum
from pathlib import Path

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kit.settings import PER_APP_ONLY, REPO_ROOT, ServiceSettings

APPS = ("services.identity", "services.orders", "services.consent", "services.transfer", "gateway")


def settings_class(app: str) -> type[ServiceSettings]:
    settings: type[ServiceSettings] = importlib.import_module(f"{app}.config").Settings
    return settings


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined or value in ("", None, []):
        return "empty"
    if isinstance(value, SecretStr):
        return "a development value" if value.get_secret_value() else "empty"
    if isinstance(value, Path):
        value = value.relative_to(REPO_ROOT) if value.is_relative_to(REPO_ROOT) else value
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _row(variable: str, field: FieldInfo, secret_note: str = "") -> str:
    meaning = field.description or ""
    if secret_note:
        meaning = f"{meaning}; {secret_note}" if meaning else secret_note
    return f"| `{variable}` | {_default(field)} | {_cell(meaning)} |"


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    shared = ServiceSettings.model_fields
    for name, field in shared.items():
        scope = "per app only" if name in PER_APP_ONLY else "or `PRIVACY_` for all"
        lines.append(_row(f"<APP>_{name.upper()}", field, scope))
    for app in APPS:
        settings = settings_class(app)
        prefix = str(settings.model_config.get("env_prefix", ""))
        for name, field in settings.model_fields.items():
            inherited = shared.get(name)
            if inherited is not None and _default(inherited) == _default(field):
                continue
            lines.append(_row(f"{prefix}{name.upper()}", field))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_table())
