"""The two lists' versions (OB-L-1) on the consent app alone: a new category in the
catalogue, a new partner or a new policy version each make a new version; the same lists
make none."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml

from kit.catalogue import Catalogue, default_catalogue, parse_catalogue
from kit.events import new_event
from kit.settings import REPO_ROOT
from services.consent.lists import service as lists
from tests.services.consent.conftest import Consent

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
TODAY = date(2026, 12, 1)


def _with_a_new_category() -> Catalogue:
    data = yaml.safe_load((REPO_ROOT / "policy" / "catalogue.yaml").read_text(encoding="utf-8"))
    data["data_categories"].append(
        {
            "id": "user.contact.messenger",
            "name": "Messenger id",
            "name_zh": "即时通讯账号",
            "description": "A messenger id.",
            "sensitive": False,
        }
    )
    account = data["resources"]["identity.account"]["fields"]
    account["messenger"] = {**account["phone"], "category": "user.contact.messenger"}
    return parse_catalogue(yaml.safe_dump(data, allow_unicode=True))


@pytest.mark.obligation("OB-L-1")
async def test_a_new_category_or_partner_makes_a_new_version_and_the_same_lists_none(
    consent: Consent,
) -> None:
    catalogue = default_catalogue()
    async with consent.context.database.session() as session:
        first = await lists.refresh(session, catalogue=catalogue, today=TODAY, now=NOW)
        same = await lists.refresh(session, catalogue=catalogue, today=TODAY, now=NOW)
        assert same.number == first.number
        wider = _with_a_new_category()
        second = await lists.refresh(session, catalogue=wider, today=TODAY, now=NOW)
        assert second.number == first.number + 1
        partner = new_event(
            source="/identity",
            type=lists.PARTNER_REGISTERED,
            subject="ptn_lists_test",
            purpose="account",
            data={"kind": "logistics", "name": "Fast Couriers Ltd", "purposes":
                  ["logistics.delivery"], "agreement_type": "entrusted_processing"},
        )  # fmt: skip
        assert await lists.record_registry_event(session, catalogue=catalogue, event=partner)
        third = await lists.refresh(session, catalogue=wider, today=TODAY, now=NOW)
        diff = await lists.diff_versions(
            session, from_version=first.number, to_version=third.number
        )
    assert [c.model_dump() for c in diff.collected] == [
        {"key": "user.contact.messenger", "change": "added", "fields": []}
    ]
    assert [(c.key, c.change) for c in diff.shared] == [("ptn_lists_test", "added")]
