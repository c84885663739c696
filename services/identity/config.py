"""Identity settings: ``IDENTITY_*`` variables, falling back to the suite-wide ``PRIVACY_*``."""

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from kit.settings import EncryptingSettings


class Settings(EncryptingSettings):
    service_name: ClassVar[str] = "identity"
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    # Tokens (issuer and audience: ``auth_issuer`` and ``auth_audience``, suite-wide)
    signing_algorithm: Literal["ES256", "RS256"] = "ES256"
    signing_key_rotation_days: int = Field(default=30, ge=1)
    access_token_ttl_s: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=3600)
    partner_token_ttl_s: int = Field(default=600, ge=60, le=3600)
    service_token_ttl_s: int = Field(default=600, ge=60, le=3600)

    # Failed logins (OWASP device cookies). Per account, from devices it never signed in
    # on: after ``login_max_failures`` failures it is locked for ``login_lock_s``, doubled
    # with each further failure up to ``login_lock_max_s``; a device cookie from an earlier
    # sign-in is not held by that lock (it has its own count and lock). Per client address:
    # after ``login_address_failures`` failures it is slowed, not locked (one try per
    # ``login_address_delay_s``), since thousands share an address behind carrier NAT.
    # Failures are forgotten ``login_window_s`` after the last one.
    login_max_failures: int = Field(default=5, ge=1)
    fraud_failed_logins: int = Field(
        default=5, ge=1, description="failed_logins (kit.fraud): flag the account at this many"
    )
    login_lock_s: int = Field(default=60, ge=1)
    login_lock_max_s: int = Field(default=3600, ge=1)
    login_window_s: int = Field(default=900, ge=1)
    login_address_failures: int = Field(default=20, ge=1)
    login_address_delay_s: int = Field(default=2, ge=1)
    login_device_cookie_days: int = Field(default=180, ge=1)
    # Failed (mismatched) verifications per account: guessing name/ID pairs is refused.
    verification_max_failures: int = Field(default=5, ge=1)
    verification_window_s: int = Field(default=24 * 3600, ge=1)

    # Real-name verification: the authority adapter.
    authority_adapter: Literal["sandbox", "http"] = "sandbox"
    authority_url: str = ""
    authority_client_id: str = ""
    authority_client_secret: SecretStr = SecretStr("")
    authority_timeout_s: float = Field(default=5.0, gt=0)
    authority_retries: int = Field(default=2, ge=0, le=5)

    # SMS codes (sign-in and registration by phone): 6 digits, single use, stored only as a
    # keyed hash. Sends are limited per phone, per account and per client address within
    # ``sms_send_window_s``, with ``sms_resend_s`` between two sends to one phone.
    sms_adapter: Literal["file", "http"] = "file"
    #: the stand-in's outbox (``file``): one line per message, read by the tests and by
    #: whoever runs ``make run``; never served by any API
    sms_file: str = ".run/data/sms/outbox.log"
    sms_url: str = ""
    sms_client_id: str = ""
    sms_client_secret: SecretStr = SecretStr("")
    sms_timeout_s: float = Field(default=5.0, gt=0)
    sms_code_ttl_s: int = Field(default=300, ge=30, le=900)
    sms_code_max_tries: int = Field(default=5, ge=1, le=10)
    sms_resend_s: int = Field(default=60, ge=1)
    sms_send_window_s: int = Field(default=3600, ge=60)
    sms_sends_per_phone: int = Field(default=5, ge=1)
    sms_sends_per_address: int = Field(default=30, ge=1)

    # Mini-programs: the platform's login (WeChat code2Session) and phone-number exchange.
    # ``make run`` points them at the stand-in platform (deploy/mini_platform).
    wechat_api_url: str = "http://127.0.0.1:8006"
    wechat_app_id: str = "wx0standin0000001"
    wechat_app_secret: SecretStr = SecretStr("standin-app-secret")
    wechat_timeout_s: float = Field(default=5.0, gt=0)
    # Alipay mini-programs: ``alipay.system.oauth.token`` at the open API gateway, signed
    # RSA2 with the app's private key (PEM); its answers are verified with Alipay's public
    # key (PEM). Either empty (the stand-in) is refused in production.
    alipay_gateway_url: str = "http://127.0.0.1:8006/gateway.do"
    alipay_app_id: str = "2021000000000001"
    alipay_app_private_key: SecretStr = SecretStr("")
    alipay_public_key: str = Field(
        default="", description="Alipay's public key (PEM): verifies each answer's `sign`"
    )
    alipay_timeout_s: float = Field(default=5.0, gt=0)
