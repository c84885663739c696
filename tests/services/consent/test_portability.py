"""Portability's re-verification on the consent app alone (OB-L-4): the copy leaves only
for a token whose password sign-in (``auth_time``) is recent; nothing else is asked first."""

from __future__ import annotations

import time

import pytest

from tests.services.consent.conftest import Consent

DESTINATION = {"name": "Other shop", "url": "https://other.example/import"}


@pytest.mark.obligation("OB-L-4")
async def test_a_copy_for_another_processor_needs_a_recent_password_sign_in(
    consent: Consent,
) -> None:
    subject, user = consent.user(auth_time=int(time.time()))
    filed = await consent.client.post(
        "/rights-requests", headers=user, json={"kind": "portability", "destination": DESTINATION}
    )
    assert filed.status_code == 202, filed.text
    path = f"/rights-requests/{filed.json()['id']}/delivery"
    stale = consent.headers_of(subject, auth_time=int(time.time()) - 3600)
    never = consent.headers_of(subject)
    for headers in (stale, never):
        refused = await consent.client.post(path, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["type"].endswith("/problems/reverification-required")
