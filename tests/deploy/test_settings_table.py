"""README's table of every setting is the one the settings classes generate."""

from __future__ import annotations

import re

from kit.settings import REPO_ROOT
from kit.settings_table import APPS, settings_table


def _readme_table() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", readme, re.DOTALL
    )
    assert found, "README's Deploying section lost its settings table markers"
    return found.group(1)


def test_readme_lists_every_setting_as_the_classes_define_them() -> None:
    assert _readme_table() == settings_table(), "run `python -m kit.settings_table` into README"


def test_the_table_names_each_apps_own_settings() -> None:
    table = settings_table()
    assert "`<APP>_KAFKA_SECURITY_PROTOCOL`" in table
    for prefix in ("IDENTITY_", "ORDERS_", "CONSENT_", "TRANSFER_", "GATEWAY_"):
        assert f"| `{prefix}" in table
    assert len(APPS) == 5
