"""The access export's wiring (OB-R-1): with a service client configured, the privacy center
gets service tokens for ``rights.access`` from identity and calls every participant's
``/rights/export/{subject}``; without one the export stays unavailable (503)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kit.service_token import ServiceTokenProvider
from kit.testing import UNREACHABLE_KAFKA, serve_app
from services.consent.config import Settings
from services.consent.rights.export import RightsExporter
from tests.services.consent.conftest import ISSUER, Consent

TOKEN_URL = "http://identity.test/oauth2/token"


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'consent.db'}",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer=ISSUER,
        log_json=False,
        first_policy_path=None,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.mark.obligation("OB-R-1")
async def test_without_a_service_client_no_exporter_is_wired(consent: Consent) -> None:
    assert getattr(consent.app.state, "rights_exporter", None) is None


@pytest.mark.obligation("OB-R-1")
async def test_a_configured_service_client_wires_the_exporter_and_closes_it(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path,
        identity_token_url=TOKEN_URL,
        service_client_id="svc_consentprivacycenter",
        service_client_secret="not-a-real-secret",
    )
    async with serve_app("services.consent", settings) as (app, _client):
        exporter = app.state.rights_exporter
        assert isinstance(exporter, RightsExporter)
        assert exporter.service_urls == settings.service_urls
        provider = exporter.token_provider
        assert isinstance(provider, ServiceTokenProvider)
        assert provider.token_url == TOKEN_URL and provider.scope == "service:rights.access"
        assert not exporter.client.is_closed
    assert exporter.client.is_closed


@pytest.mark.obligation("OB-R-1")
def test_a_partial_service_client_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        settings_for(tmp_path, identity_token_url=TOKEN_URL)
