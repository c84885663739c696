"""A refused additional purpose is not asked again (OB-L-13, NDSMR art. 22) unless its
purpose, method or data types changed: the app asks ``/consents/me/prompts`` before it
prompts, and the answer follows the user's refusal and the catalogue."""

from __future__ import annotations

from typing import Any

import pytest

from kit.catalogue import parse_catalogue
from kit.settings import REPO_ROOT
from tests.services.consent.conftest import Consent

PURPOSE = "marketing.price_drop"
DESCRIPTION = "    description: Price-drop and discount reminders for goods in the cart.\n"


async def decide(consent: Consent, headers: dict[str, str], granted: bool) -> None:
    response = await consent.client.post(
        "/consents",
        headers=headers,
        json={"purpose": PURPOSE, "granted": granted, "shown": {"text": "Price-drop reminders"}},
    )
    assert response.status_code == 201, response.text


async def prompt(consent: Consent, headers: dict[str, str]) -> dict[str, Any]:
    response = await consent.client.get("/consents/me/prompts", headers=headers)
    assert response.status_code == 200, response.text
    [found] = [item for item in response.json() if item["purpose"] == PURPOSE]
    assert isinstance(found, dict)
    return found


@pytest.mark.obligation("OB-L-13")
async def test_a_refusal_is_not_asked_again_while_the_purpose_is_unchanged(
    consent: Consent,
) -> None:
    _, headers = consent.user()
    assert (await prompt(consent, headers))["ask"] is True
    await decide(consent, headers, granted=False)
    refused = await prompt(consent, headers)
    assert refused["ask"] is False and refused["reason"] == "refused"
    assert refused["refused_at"] is not None


@pytest.mark.obligation("OB-L-13")
async def test_a_refusal_may_be_asked_again_once_the_purpose_changed(consent: Consent) -> None:
    _, headers = consent.user()
    await decide(consent, headers, granted=False)
    text = (REPO_ROOT / "policy" / "catalogue.yaml").read_text(encoding="utf-8")
    assert DESCRIPTION in text
    consent.context.catalogue = parse_catalogue(
        text.replace(DESCRIPTION, DESCRIPTION.replace("goods in the cart", "goods viewed"))
    )
    changed = await prompt(consent, headers)
    assert changed["ask"] is True and changed["reason"] == "changed_since_refusal"


@pytest.mark.obligation("OB-L-13")
async def test_a_granted_purpose_is_not_asked_for(consent: Consent) -> None:
    _, headers = consent.user()
    await decide(consent, headers, granted=True)
    granted = await prompt(consent, headers)
    assert granted["ask"] is False and granted["reason"] == "granted"
