"""Signing keys, access tokens and refresh-token families. No HTTP here.

Keys: one active key signs; it is generated on first start and replaced after
``signing_key_rotation_days``. A retired key stays in the JWKS until every token it signed
has expired. Private keys are stored encrypted (``kit.crypto``) under a system subject.

Refresh tokens are opaque and stored as hashes. Each refresh uses up the token and issues
the next one of the same family; presenting a used token again revokes the whole family,
since one of the two holders is not the user.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from kit.auth import (
    PARTNER_SCOPES,
    SERVICE_SCOPES,
    STAFF_ROLE_SCOPES,
    USER_SCOPES,
    KeySet,
    SigningKey,
    access_claims,
    generate_signing_key,
    issue_token,
    service_purpose,
)
from kit.crypto import FieldCipher
from kit.db import Database
from kit.errors import DomainError
from kit.ids import new_id
from kit.models import utcnow
from services.identity.config import Settings
from services.identity.models import (
    Account,
    MiniProgramIdentity,
    RefreshToken,
    SigningKeyRecord,
)
from services.identity.secrets import fingerprint, new_token
from services.identity.tokens.schemas import IssuerMetadata, TokenResponse

#: RFC 6749 section 5.1: token answers, and the token endpoint's errors, are never cached.
TOKEN_ANSWER_HEADERS: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

SIGNING_KEYS_SUBJECT = "system.identity.signing_keys"
PRIVATE_KEY_CONTEXT = "identity.signing_key.private_pem"


class OAuthError(DomainError):
    """An error of the OAuth 2.0 token endpoint, answered as RFC 6749 section 5.2 says
    (``error`` and ``error_description``, not problem+json): OAuth clients read only that.
    ``code`` is the RFC's error code."""

    status, code, title = 400, "invalid_request", "Invalid request"


class InvalidRequest(OAuthError):
    """A parameter missing, repeated, too long or malformed."""


class UnsupportedGrantType(OAuthError):
    status, code, title = 400, "unsupported_grant_type", "Unsupported grant type"


class InvalidClient(OAuthError):
    """Unknown client, wrong secret or revoked client; the challenge names HTTP Basic, the
    authentication scheme the metadata lists first."""

    status, code, title = 401, "invalid_client", "Invalid client"
    headers = {"WWW-Authenticate": 'Basic realm="identity"'}


class InvalidScope(OAuthError):
    status, code, title = 400, "invalid_scope", "Invalid scope"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant (a partner without a passed, in-date assessment)."""

    status, code, title = 400, "unauthorized_client", "Unauthorized client"


class InvalidGrant(DomainError):
    """The refresh token (or credentials) cannot be used; OAuth2's ``invalid_grant``."""

    status, code, title = 401, "invalid_grant", "Invalid grant"


class RefreshTokenReused(InvalidGrant):
    """A used refresh token came back: its family is revoked, and that revocation stands."""

    keep_changes = True


def issuer_metadata(settings: Settings) -> IssuerMetadata:
    """RFC 8414 metadata saying only what works: the client-credentials grant at the token
    endpoint, with the client's secret in HTTP Basic or the form. ``auth_issuer`` is where
    clients reach identity (through the gateway), so every URL here is one they can open."""
    issuer = settings.auth_issuer.rstrip("/")
    return IssuerMetadata(
        issuer=issuer,
        jwks_uri=f"{issuer}/.well-known/jwks.json",
        token_endpoint=f"{issuer}/oauth2/token",
        # RFC 8414 requires a non-empty list; "none" (OAuth 2.0 Multiple Response Types)
        # issues nothing at an authorization endpoint, which this issuer does not have.
        response_types_supported=["none"],
        grant_types_supported=["client_credentials"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        scopes_supported=sorted(str(scope) for scope in PARTNER_SCOPES | SERVICE_SCOPES),
    )


async def _store_new_key(session: AsyncSession, *, cipher: FieldCipher, alg: str) -> SigningKey:
    key = generate_signing_key(alg)
    encrypted = await cipher.encrypt(
        session,
        subject=SIGNING_KEYS_SUBJECT,
        value=key.private_pem.decode(),
        context=PRIVATE_KEY_CONTEXT,
    )
    session.add(
        SigningKeyRecord(
            kid=key.kid, alg=key.alg, private_pem_encrypted=encrypted, public_jwk=key.public_jwk()
        )
    )
    return key


async def active_signing_key(
    session: AsyncSession, *, cipher: FieldCipher, settings: Settings
) -> SigningKey:
    """The key that signs now: created on first use, replaced when it is due."""
    record = await session.scalar(
        select(SigningKeyRecord)
        .where(col(SigningKeyRecord.retired_at).is_(None))
        .order_by(col(SigningKeyRecord.created_at).desc())
        .limit(1)
    )
    if record is None:
        return await _store_new_key(session, cipher=cipher, alg=settings.signing_algorithm)
    if utcnow() - record.created_at >= timedelta(days=settings.signing_key_rotation_days):
        return await rotate_signing_key(session, cipher=cipher, settings=settings)
    pem = await cipher.decrypt(
        session,
        subject=SIGNING_KEYS_SUBJECT,
        token=record.private_pem_encrypted,
        context=PRIVATE_KEY_CONTEXT,
    )
    return SigningKey(kid=record.kid, alg=record.alg, private_pem=pem.encode())


async def rotate_signing_key(
    session: AsyncSession, *, cipher: FieldCipher, settings: Settings
) -> SigningKey:
    """Retire the signing key(s) and start a new one; old tokens stay verifiable."""
    await session.execute(
        update(SigningKeyRecord)
        .where(col(SigningKeyRecord.retired_at).is_(None))
        .values(retired_at=utcnow())
    )
    return await _store_new_key(session, cipher=cipher, alg=settings.signing_algorithm)


async def published_keys(session: AsyncSession, *, settings: Settings) -> KeySet:
    """Keys whose tokens may still be alive: the active ones and those retired less than
    the longest token lifetime ago."""
    longest = max(
        settings.access_token_ttl_s, settings.partner_token_ttl_s, settings.service_token_ttl_s
    )
    horizon = utcnow() - timedelta(seconds=longest + 60)
    records = (await session.scalars(select(SigningKeyRecord))).all()
    alive = [
        record.public_jwk
        for record in records
        if record.retired_at is None or record.retired_at > horizon
    ]
    return KeySet(alive)


# -- access tokens -------------------------------------------------------------------
def account_scopes(account: Account) -> frozenset[str]:
    if account.kind == "staff":
        return frozenset(
            scope for role in account.roles for scope in STAFF_ROLE_SCOPES.get(role, ())
        )
    return frozenset(USER_SCOPES)


async def issue_account_tokens(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    account: Account,
    client_type: str,
    family_id: str | None = None,
    auth_time: int | None = None,
) -> TokenResponse:
    """An access token and the next refresh token of ``family_id`` (a new family if None).
    ``auth_time`` (OIDC) is when the user signed in with their password: now for a new
    login, the login's for a refresh (so a refresh is never a re-verification)."""
    scopes = account_scopes(account)
    claims = access_claims(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        subject=account.id,
        ttl_s=settings.access_token_ttl_s,
        scopes=scopes,
        client_id=client_type,
        kind=account.kind,
        client_type=client_type,
        verified=account.verified,
        minor=account.minor,
        guardian_consent=account.guardian_consent_at is not None,
        auth_time=auth_time if auth_time is not None else int(time.time()),
    )
    key = await active_signing_key(session, cipher=cipher, settings=settings)
    refresh = new_token("rt")
    session.add(
        RefreshToken(
            id=new_id("rtk"),
            family_id=family_id or new_id("fam"),
            account_id=account.id,
            token_hash=fingerprint(refresh),
            client_type=client_type,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    return TokenResponse(
        access_token=issue_token(claims, key=key),
        expires_in=settings.access_token_ttl_s,
        scope=claims["scope"],
        refresh_token=refresh,
    )


async def refresh_tokens(
    session: AsyncSession, *, cipher: FieldCipher, settings: Settings, refresh_token: str
) -> TokenResponse:
    """Use up ``refresh_token`` and issue the next pair of its family; a reused token
    revokes the family (:class:`RefreshTokenReused`)."""
    record = await session.scalar(
        select(RefreshToken).where(col(RefreshToken.token_hash) == fingerprint(refresh_token))
    )
    if record is None or record.revoked_at is not None or record.expires_at <= utcnow():
        raise InvalidGrant("the refresh token is not valid")
    if record.used_at is not None:
        await revoke_family(session, family_id=record.family_id)
        raise RefreshTokenReused("the refresh token was already used; this login was revoked")
    account = await session.get(Account, record.account_id)
    if account is None or account.status != "active":
        raise InvalidGrant("the refresh token is not valid")
    record.used_at = utcnow()
    signed_in = await session.scalar(
        select(func.min(col(RefreshToken.created_at))).where(
            col(RefreshToken.family_id) == record.family_id
        )
    )
    return await issue_account_tokens(
        session,
        cipher=cipher,
        settings=settings,
        account=account,
        client_type=record.client_type,
        family_id=record.family_id,
        auth_time=int((signed_in or record.created_at).timestamp()),
    )


async def revoke_family(session: AsyncSession, *, family_id: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


async def log_out(session: AsyncSession, *, refresh_token: str, account_id: str) -> None:
    """Revoke the login ``refresh_token`` belongs to, if it is the caller's."""
    record = await session.scalar(
        select(RefreshToken).where(col(RefreshToken.token_hash) == fingerprint(refresh_token))
    )
    if record is not None and record.account_id == account_id:
        await revoke_family(session, family_id=record.family_id)
        if record.client_type == "mini_program":  # the platform's session key goes too
            await session.execute(
                update(MiniProgramIdentity)
                .where(col(MiniProgramIdentity.account_id) == account_id)
                .values(session_key_encrypted=None)
            )


async def issue_partner_token(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    client_id: str,
    scopes: frozenset[str],
    purposes: Iterable[str],
) -> TokenResponse:
    claims = access_claims(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        subject=client_id,
        ttl_s=settings.partner_token_ttl_s,
        scopes=scopes,
        client_id=client_id,
        kind="partner",
        client_type="server",
        purposes=sorted(purposes),
    )
    key = await active_signing_key(session, cipher=cipher, settings=settings)
    return TokenResponse(
        access_token=issue_token(claims, key=key),
        expires_in=settings.partner_token_ttl_s,
        scope=str(claims["scope"]),
    )


async def issue_service_token(
    session: AsyncSession,
    *,
    cipher: FieldCipher,
    settings: Settings,
    client_id: str,
    scopes: frozenset[str],
) -> TokenResponse:
    """A service token: kind ``service``, a server client, and as purposes exactly those
    its scopes name (``service:<purpose>``)."""
    claims = access_claims(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        subject=client_id,
        ttl_s=settings.service_token_ttl_s,
        scopes=scopes,
        client_id=client_id,
        kind="service",
        client_type="server",
        purposes=sorted({service_purpose(scope) for scope in scopes}),
    )
    key = await active_signing_key(session, cipher=cipher, settings=settings)
    return TokenResponse(
        access_token=issue_token(claims, key=key),
        expires_in=settings.service_token_ttl_s,
        scope=str(claims["scope"]),
    )


class LocalKeySource:
    """Identity verifies its own tokens from its database rather than over HTTP; the key
    set is re-read at most every ``ttl_s`` seconds, or at once for an unknown ``kid``
    (a rotation made by another worker), but never more than once a second."""

    def __init__(self, database: Database, settings: Settings, *, ttl_s: float = 30.0) -> None:
        self.database = database
        self.settings = settings
        self.ttl_s = ttl_s
        self._keys = KeySet([])
        self._read_at = -1e9

    async def __call__(self, kid: str | None = None) -> KeySet:
        age = time.monotonic() - self._read_at
        stale = age > self.ttl_s or (kid is not None and self._keys.get(kid) is None and age > 1)
        if stale:
            async with self.database.sessionmaker() as session:
                self._keys = await published_keys(session, settings=self.settings)
            self._read_at = time.monotonic()
        return self._keys
