"""Settings: a service's own variables win over the suite-wide ones; secrets stay hidden."""

from __future__ import annotations

import base64

import pytest

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


def test_production_refuses_the_development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="development master key"):
        OrdersSettings()


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
