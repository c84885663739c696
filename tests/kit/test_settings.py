"""Settings: a service's own variables win over the suite-wide ones; secrets stay hidden."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from gateway.config import Settings as GatewaySettings
from kit.settings import DEVELOPMENT_MASTER_KEY
from services.orders.config import Settings as OrdersSettings

OTHER_KEY = base64.b64encode(b"another-master-key-of-32-bytes!!").decode()


def test_service_variables_win_over_suite_wide_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_KAFKA_BOOTSTRAP_SERVERS", "suite:9092")
    assert OrdersSettings().kafka_bootstrap_servers == "suite:9092"
    monkeypatch.setenv("ORDERS_KAFKA_BOOTSTRAP_SERVERS", "orders:9092")
    assert OrdersSettings().kafka_bootstrap_servers == "orders:9092"


def test_the_master_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_MASTER_KEY", OTHER_KEY)
    settings = OrdersSettings()
    assert settings.master_key_bytes == b"another-master-key-of-32-bytes!!"
    assert OTHER_KEY not in repr(settings) and OTHER_KEY not in str(settings.model_dump())


def test_a_short_master_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_MASTER_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="32 bytes"):
        OrdersSettings()


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_every_environment_but_development_and_test_refuses_the_development_key(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", environment)
    with pytest.raises(
        ValueError, match=f"development master key may not be used in {environment}"
    ):
        OrdersSettings()
    monkeypatch.setenv("ORDERS_MASTER_KEY", OTHER_KEY)
    assert OrdersSettings().environment == environment


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_may_use_the_development_key(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", environment)
    assert OrdersSettings().master_key.get_secret_value() == DEVELOPMENT_MASTER_KEY


@pytest.mark.parametrize("environment", ["prod", "Production", "produciton", "live", ""])
def test_an_environment_that_is_none_of_the_four_is_refused(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    """Formerly only exactly ``production`` refused the development key: ``prod`` or a typo
    ran with a key printed in the source."""
    monkeypatch.setenv("ORDERS_ENVIRONMENT", environment)
    with pytest.raises(ValidationError, match="environment"):
        OrdersSettings()


def test_the_gateway_has_no_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway encrypts nothing: it neither reads a master key nor refuses to start in
    production for want of one."""
    monkeypatch.setenv("PRIVACY_MASTER_KEY", OTHER_KEY)
    monkeypatch.setenv("GATEWAY_MASTER_KEY", OTHER_KEY)
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    settings = GatewaySettings()
    assert "master_key" not in GatewaySettings.model_fields
    assert not hasattr(settings, "master_key_bytes")
    assert OTHER_KEY not in str(settings.model_dump())


def test_each_app_keeps_its_own_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    monkeypatch.setenv("PRIVACY_DATABASE_URL", "postgresql+asyncpg://shared/one")
    assert OrdersSettings().database_url.startswith("sqlite+aiosqlite:///")
    assert OrdersSettings().database_url.endswith("/orders.db")


def test_trusted_proxies_are_per_app_addresses_or_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRIVACY_TRUSTED_PROXIES", "0.0.0.0/0")  # never suite-wide
    assert OrdersSettings().trusted_proxies == ["127.0.0.1", "::1"]
    monkeypatch.setenv("ORDERS_TRUSTED_PROXIES", "10.1.2.3, 10.9.0.0/16")
    assert OrdersSettings().trusted_proxies == ["10.1.2.3", "10.9.0.0/16"]
    monkeypatch.setenv("ORDERS_TRUSTED_PROXIES", "10.1.2.3,gateway.internal")
    with pytest.raises(ValueError, match=r"gateway\.internal"):
        OrdersSettings()
