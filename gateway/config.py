"""Gateway settings: ``GATEWAY_*`` variables, falling back to the suite-wide ``PRIVACY_*``."""

from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kit.settings import REPO_ROOT, ConsentViewSettings

DEFAULT_ROUTES = REPO_ROOT / "policy" / "routes.yaml"


class Settings(ConsentViewSettings):
    service_name: ClassVar[str] = "gateway"
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    routes_path: Path = Field(default=DEFAULT_ROUTES, description="the route table")
    # The gateway is the edge: it believes no client's X-Forwarded-For, unless a load
    # balancer named here stands in front of it.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default=[])
    # CORS (browsers on other origins) ------------------------------------------------
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="origins (scheme://host[:port], comma-separated) whose pages may call "
        "the gateway from a browser, with credentials (none: no cross-origin access)",
    )
    cors_max_age_s: int = Field(
        default=600, ge=0, description="how long a browser may reuse a preflight's answer"
    )
    # operations: /readyz, /metrics and /docs, never on the public origin ----------------
    ops_host: str = Field(
        default="127.0.0.1", description="where the operations routes listen (not public)"
    )
    ops_port: int = Field(
        default=8010,
        ge=0,
        le=65535,
        description="port of /readyz, /metrics, /docs and /openapi.json (0: any free port); "
        "the public port answers a bare /healthz and the client-facing /openapi.json",
    )
    # upstreams ------------------------------------------------------------------------
    upstream_identity_url: str = "http://127.0.0.1:8001"
    upstream_orders_url: str = "http://127.0.0.1:8002"
    upstream_consent_url: str = "http://127.0.0.1:8003"
    upstream_transfer_url: str = "http://127.0.0.1:8004"
    upstream_connect_timeout_s: float = Field(default=2.0, gt=0)
    upstream_timeout_s: float = Field(
        default=10.0, gt=0, description="whole upstream exchange; past it: 504"
    )
    upstream_max_connections: int = Field(default=100, ge=1)
    upstream_max_keepalive: int = Field(default=20, ge=0)
    # access events --------------------------------------------------------------------
    access_events_direct: bool = Field(
        default=True,
        description="send access events straight to Kafka, the outbox only when Kafka does "
        "not acknowledge in time (false: every one through the outbox)",
    )
    access_event_ack_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="how long a response waits for Kafka's acknowledgement of its access "
        "event before the event goes to the outbox",
    )
    access_event_linger_ms: int = Field(
        default=1, ge=0, description="the access-event producer's linger (batching wait)"
    )
    access_event_max_batch: int = Field(
        default=256,
        ge=1,
        description="most access events committed to the outbox in one transaction (1: one each)",
    )
    # limits ---------------------------------------------------------------------------
    max_body_bytes: int = Field(default=1_048_576, ge=0, description="larger bodies: 413")
    max_header_bytes: int = Field(
        default=16_384,
        ge=8_200,  # a bearer token may be 8192 characters
        description="longest value of one request header; longer: 431",
    )
    # slow and greedy clients (gateway.protocol, on the connection, before the app) -----
    idle_timeout_s: float = Field(
        default=5.0, gt=0, description="a connection with no request under way is closed"
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="all of a request's headers within; past it: 408"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="all of a request's body within; past it: 408"
    )
    max_request_header_bytes: int = Field(
        default=65_536,
        ge=16_384,
        description="request line and all headers together; more: 431 and closed",
    )
    max_connections_per_client: int = Field(
        default=64,
        ge=0,
        description="connections open at once per client address (TCP peer; 0: no cap, "
        "as behind a load balancer); one more: 429 and closed",
    )
    rate_limit_per_s: float = Field(
        default=50.0, ge=0, description="requests per second per client; 0 turns it off"
    )
    rate_limit_burst: int = Field(default=100, ge=1)
    gzip_min_bytes: int = Field(
        default=1024,
        ge=0,
        description="answers at least this long are gzip-compressed for clients that "
        "accept it (0: never)",
    )
    # worker processes (uvicorn --workers) ----------------------------------------------
    workers: int = Field(
        default=1,
        ge=1,
        description="gateway worker processes: each keeps 1/workers of the rate limit, and "
        "rereads the policy facts its siblings' shared consumer recorded",
    )
    policy_facts_refresh_s: float = Field(
        default=1.0, gt=0, description="with workers > 1: how often each rereads them"
    )
    rate_limit_max_clients: int = Field(default=100_000, ge=1)
    # policy renewal (OB-5-3) ----------------------------------------------------------
    policy_major_sequence: int = Field(
        default=0,
        ge=0,
        description="publication sequence of the newest major policy version; users who "
        "agreed to an older one must renew (0: no renewal asked)",
    )
    policy_major_version: str = Field(default="", description="its version label")
    policy_page_url: str = Field(default="/consent/policy.html", description="the Link target")

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        entries = [e.strip() for e in value.split(",")] if isinstance(value, str) else value
        entries = [entry for entry in entries if entry]
        for entry in entries:
            # An origin is exactly scheme://host[:port] (RFC 6454): no path, no wildcard
            # (credentials are allowed, so "*" would never do).
            parts = urlsplit(entry)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or "*" in entry
                or entry != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(f"not an origin (scheme://host[:port]): {entry!r}")
        return entries

    def upstream_urls(self) -> dict[str, str]:
        return {
            "identity": self.upstream_identity_url,
            "orders": self.upstream_orders_url,
            "consent": self.upstream_consent_url,
            "transfer": self.upstream_transfer_url,
        }
