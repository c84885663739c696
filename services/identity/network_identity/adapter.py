"""The national network identity authentication service (网号/网证; Measures for the
Administration of National Network Identity Authentication Public Services, in force
2025-07-15), behind one adapter (OB-L-11).

The user's app obtains a one-time credential from the national public service (its app
or SDK) and hands it over; :meth:`NetworkIdentityAdapter.authenticate` exchanges it for a
:class:`NetworkIdentityResult`: whether it authenticated, at which level, the service's
transaction reference, and the *network number* (网号), a pseudonymous identifier the
service issues per person. The result type has no field for a name or an ID number: an
adapter cannot hand one over, so none can be stored.

- :class:`SandboxNetworkIdentity` answers deterministically, for development and tests
  (credentials ``sandbox-netid:<anything>``; ``...:mismatch`` fails, ``...:unavailable``
  raises :class:`~services.identity.verification.authority.ProviderUnavailable`). It must
  never serve production: :func:`network_identity_from_settings` gives none there until a
  real adapter is configured.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from services.identity.config import Settings
from services.identity.verification.authority import ProviderUnavailable

NetworkLevel = Literal["real_name", "real_person"]
NETWORK_NUMBER_LENGTH: Final = 64


@dataclass(frozen=True)
class NetworkIdentityResult:
    """The service's answer: the outcome and the pseudonymous network number only."""

    authenticated: bool
    level: NetworkLevel
    network_number: str
    reference: str


class NetworkIdentityAdapter(Protocol):
    async def authenticate(self, *, credential: str) -> NetworkIdentityResult:
        """Exchange the app's one-time credential for the result; raises
        ``ProviderUnavailable`` when the service cannot answer."""
        ...


class SandboxNetworkIdentity:
    """A deterministic stand-in: the network number is derived from the credential's
    body, so one sandbox person keeps one number."""

    PREFIX: Final = "sandbox-netid:"
    MISMATCH: Final = ":mismatch"
    UNAVAILABLE: Final = ":unavailable"

    async def authenticate(self, *, credential: str) -> NetworkIdentityResult:
        if credential.endswith(self.UNAVAILABLE):
            raise ProviderUnavailable(
                "the sandbox network identity service is unavailable", retry_after_s=5
            )
        body = credential.removeprefix(self.PREFIX).removesuffix(self.MISMATCH)
        number = "wh" + hashlib.sha256(body.encode()).hexdigest()[:30]
        return NetworkIdentityResult(
            authenticated=credential.startswith(self.PREFIX)
            and not credential.endswith(self.MISMATCH),
            level="real_name",
            network_number=number,
            reference=f"sandbox-{uuid.uuid4()}",
        )


def network_identity_from_settings(settings: Settings) -> NetworkIdentityAdapter | None:
    """The sandbox outside production; none in production (the route answers 503)."""
    if settings.environment == "production":
        return None
    return SandboxNetworkIdentity()
