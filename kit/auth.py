"""Auth: every JWT of the suite is issued and verified here, over python-jose, and nowhere else.

- :class:`Scope` names the suite's OAuth2 scopes; :data:`USER_SCOPES`, :data:`STAFF_SCOPES`,
  :data:`PARTNER_SCOPES`, :data:`SERVICE_SCOPES` group them by kind of principal and
  :data:`STAFF_ROLE_SCOPES` gives each staff role its scopes. A service scope is
  ``service:<purpose>`` (:func:`service_purpose`): one internal service calling another
  under that purpose.
- :class:`SigningKey` / :func:`generate_signing_key` hold an issuer's private key (ES256 on
  P-256, or RS256 with RSA >= 2048 bits); its ``kid`` is the RFC 7638 JWK thumbprint by
  default. :func:`issue_token` signs an access token with header ``alg``, ``kid`` and
  ``typ: at+jwt`` (RFC 9068).
- :class:`KeySet` is a JWKS of public verification keys. Keys whose ``alg`` is outside
  :data:`ALLOWED_ALGORITHMS`, whose ``use`` is not ``sig``, whose type does not fit an
  allowed algorithm (EC P-256, RSA >= 2048 bits), or whose ``kid`` is ambiguous are
  ignored; private members are dropped. Each key is prepared once (python-jose key object
  pinned to one algorithm), so a verification does no key parsing.
- :func:`verify_token` checks, *before any cryptography*: size (<= 8192 chars), three
  base64url parts, header ``alg`` in the allow-list (``none`` in any spelling, ``HS*`` and
  everything else refused), ``typ`` is ``at+jwt``, no ``jku``/``x5u``/``jwk``/``x5c``/
  ``crit`` (nor JWE / RFC 7797 markers), a well-formed ``kid`` present in the key set,
  and a key whose type and own ``alg`` match the header. Only then python-jose (>= 3.4)
  checks the signature, and only the signature, with that one key and that one algorithm;
  the claims are checked here: ``exp``, ``iat``, ``sub``, ``iss``, ``aud``, ``jti``
  required, ``iss`` and ``aud`` as expected, ``sub`` and ``jti`` non-empty strings, ``exp``,
  ``iat`` and ``nbf`` (when present) against an injectable clock with a leeway. Every
  failure is :class:`InvalidToken` (401) with a general reason named by the check that
  failed (never by a library's message); a token is never echoed.
- :class:`Principal` is who calls: subject, kind (user / staff / partner / service), scopes,
  client type, verification and minor flags, a partner's or service's purposes. A token
  whose scopes do not belong to its kind (a user token with an admin scope, a user token
  with a service scope) is refused; a service token must be a ``server`` client's and
  carry only the purposes its scopes name.
- :class:`JwksClient` fetches identity's JWKS over httpx, caches it ``ttl_s`` and refetches
  for an unknown ``kid`` at most once per ``min_refresh_interval_s``, so random kids cannot
  make it hammer identity; when identity is down it serves the last set for ``max_stale_s``.
- :class:`TokenVerifier` binds issuer, audience and a key source, and keeps an LRU cache of
  verified tokens (keyed by SHA-256 of the token) that never serves a token at or after its
  ``exp``. ``app.state.token_verifier`` holds one per app.
- FastAPI glue: :func:`current_principal` (dependency) and :func:`require` (scopes, else
  :class:`InsufficientScope`, 403 ``insufficient-scope`` naming the missing scopes)::

      principal: Annotated[Principal, require(Scope.ORDERS_READ)]
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Final, Literal, NamedTuple

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jws, jwt
from jose.backends.cryptography_backend import CryptographyECKey, CryptographyRSAKey
from jose.exceptions import JOSEError
from pydantic import BaseModel, ConfigDict

from kit.errors import Forbidden, ServiceUnavailable, Unauthorized

logger = logging.getLogger("kit.auth")

# --------------------------------------------------------------------------- scopes


class Scope(StrEnum):
    """The suite's OAuth2 scopes (a token's ``scope`` claim is a space-separated list)."""

    # users
    ACCOUNT_READ = "account:read"
    ACCOUNT_WRITE = "account:write"
    VERIFICATION_WRITE = "verification:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    CONSENT_READ = "consent:read"
    CONSENT_WRITE = "consent:write"
    # staff
    ADMIN_STAFF = "admin:staff"
    ADMIN_PARTNERS = "admin:partners"
    ADMIN_CATALOGUE = "admin:catalogue"
    ADMIN_POLICY = "admin:policy"
    ADMIN_INCIDENTS = "admin:incidents"
    ADMIN_TRANSFERS = "admin:transfers"
    ADMIN_RIGHTS = "admin:rights"
    SUPPORT_READ = "support:read"
    SUPPORT_WRITE = "support:write"
    SECURITY_READ = "security:read"
    # partners
    PARTNER_LOGISTICS = "partner:logistics"
    PARTNER_CUSTOMS = "partner:customs"
    PARTNER_TAX = "partner:tax"
    PARTNER_PAYMENT = "partner:payment"
    PARTNER_SELLER = "partner:seller"
    # internal services, one scope per purpose they call another service under
    SERVICE_CROSS_BORDER_TRANSFER = "service:cross_border.transfer"
    SERVICE_RIGHTS_ACCESS = "service:rights.access"


USER_SCOPES: Final = frozenset(
    {
        Scope.ACCOUNT_READ,
        Scope.ACCOUNT_WRITE,
        Scope.VERIFICATION_WRITE,
        Scope.ORDERS_READ,
        Scope.ORDERS_WRITE,
        Scope.CONSENT_READ,
        Scope.CONSENT_WRITE,
    }
)

STAFF_ROLE_SCOPES: Final[dict[str, frozenset[Scope]]] = {
    "privacy_officer": frozenset(
        {
            Scope.ADMIN_STAFF,
            Scope.ADMIN_PARTNERS,
            Scope.ADMIN_POLICY,
            Scope.ADMIN_INCIDENTS,
            Scope.ADMIN_TRANSFERS,
            Scope.ADMIN_RIGHTS,
            Scope.SUPPORT_READ,
            Scope.SECURITY_READ,
        }
    ),
    # goods, prices, discounts and sale areas: the shop's catalogue, no partner or policy
    "catalogue_manager": frozenset({Scope.ADMIN_CATALOGUE}),
    "customer_service": frozenset({Scope.SUPPORT_READ, Scope.SUPPORT_WRITE}),
    "security": frozenset({Scope.SECURITY_READ}),
}

STAFF_SCOPES: Final = frozenset(scope for scopes in STAFF_ROLE_SCOPES.values() for scope in scopes)

PARTNER_SCOPES: Final = frozenset(
    {
        Scope.PARTNER_LOGISTICS,
        Scope.PARTNER_CUSTOMS,
        Scope.PARTNER_TAX,
        Scope.PARTNER_PAYMENT,
        Scope.PARTNER_SELLER,
    }
)

#: A service scope is ``service:<purpose>``: the one purpose the calling service acts under.
SERVICE_SCOPE_PREFIX: Final = "service:"

SERVICE_SCOPES: Final = frozenset(
    scope for scope in Scope if scope.value.startswith(SERVICE_SCOPE_PREFIX)
)


def service_purpose(scope: Scope | str) -> str:
    """The purpose a service scope names (``service:cross_border.transfer`` ->
    ``cross_border.transfer``); ``ValueError`` for any other scope."""
    if Scope(scope) not in SERVICE_SCOPES:
        raise ValueError(f"{scope} is not a service scope")
    return str(scope).removeprefix(SERVICE_SCOPE_PREFIX)


PrincipalKind = Literal["user", "staff", "partner", "service"]
ClientType = Literal["app", "web", "mini_program", "server"]

#: The scopes a principal of each kind may hold; anything else in a token refuses it.
SCOPES_BY_KIND: Final[dict[str, frozenset[Scope]]] = {
    "user": USER_SCOPES,
    "staff": STAFF_SCOPES,
    "partner": PARTNER_SCOPES,
    "service": SERVICE_SCOPES,
}

# --------------------------------------------------------------------------- constants

ALLOWED_ALGORITHMS: Final = ("ES256", "RS256")
ACCESS_TOKEN_TYPE: Final = "at+jwt"
#: RFC 9068 allows the full media type too; comparison is case-insensitive (RFC 7515 4.1.9).
_ACCEPTED_TYPES: Final = frozenset({ACCESS_TOKEN_TYPE, "application/" + ACCESS_TOKEN_TYPE})
MAX_TOKEN_LENGTH: Final = 8192
MAX_KID_LENGTH: Final = 128
MIN_RSA_BITS: Final = 2048
#: Header parameters that point to keys elsewhere, embed keys, or change processing rules.
FORBIDDEN_HEADERS: Final = ("jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc")
#: Claims every access token carries (checked here, after the signature).
REQUIRED_CLAIMS: Final = ("exp", "iat", "sub", "iss", "aud", "jti")

_KID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")

# --------------------------------------------------------------------------- errors


class InvalidToken(Unauthorized):
    """A bearer token that cannot be trusted (401). The detail says what is wrong in
    general terms and never contains the token.

    ``headers`` holds the RFC 6750 ``WWW-Authenticate`` challenge for the response."""

    code, title = "invalid-token", "Invalid token"

    def __init__(self, detail: str, *, challenge: str = 'Bearer error="invalid_token"') -> None:
        super().__init__(detail)
        self.headers: dict[str, str] = {"WWW-Authenticate": challenge}


class InsufficientScope(Forbidden):
    """A valid token without the scopes a route needs (403); names the missing scopes."""

    code, title = "insufficient-scope", "Insufficient scope"

    def __init__(self, missing: Iterable[str]) -> None:
        names = sorted(str(scope) for scope in missing)
        super().__init__("missing scope: " + " ".join(names), extra={"missing_scopes": names})
        self.headers: dict[str, str] = insufficient_scope_challenge(names)


def insufficient_scope_challenge(scopes: Iterable[str]) -> dict[str, str]:
    """RFC 6750 section 3.1: a 403 for a missing scope says so, naming the scopes wanted."""
    scope = " ".join(sorted(str(scope) for scope in scopes))
    return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


# --------------------------------------------------------------------------- keys


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict base64url (no padding, no foreign characters; ``ValueError`` otherwise)."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _int_to_b64url(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64url_encode(value.to_bytes(size, "big"))


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (base64url SHA-256 of the required members, sorted, compact)."""
    kty = jwk.get("kty")
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}.get(str(kty))
    if members is None:
        raise ValueError("unsupported key type")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return _b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _public_members(public_key: PublicKey) -> dict[str, str]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _int_to_b64url(numbers.x, 32),
            "y": _int_to_b64url(numbers.y, 32),
        }
    rsa_numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _int_to_b64url(rsa_numbers.n), "e": _int_to_b64url(rsa_numbers.e)}


def _check_key_fits(alg: str, key: PublicKey | PrivateKey) -> None:
    """ES256 needs an EC P-256 key, RS256 an RSA key of at least 2048 bits."""
    if alg == "ES256":
        if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) or not (
            isinstance(key.curve, ec.SECP256R1)
        ):
            raise ValueError("ES256 needs an EC P-256 key")
    elif alg == "RS256":
        if not isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            raise ValueError("RS256 needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RS256 needs an RSA key of at least {MIN_RSA_BITS} bits")
    else:
        raise ValueError("algorithm not allowed")


@dataclass(frozen=True)
class SigningKey:
    """An issuer's private signing key. Its PEM never appears in ``repr``."""

    kid: str
    alg: str
    private_pem: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.alg not in ALLOWED_ALGORITHMS:
            raise ValueError(f"signing algorithm must be one of {ALLOWED_ALGORITHMS}")
        if not isinstance(self.kid, str) or not _KID_RE.fullmatch(self.kid):
            raise ValueError("kid must be 1-128 characters of [A-Za-z0-9_-]")
        _check_key_fits(self.alg, self._private_key)

    @cached_property
    def _private_key(self) -> PrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("unsupported private key type")
        return key

    @cached_property
    def _jose_key(self) -> CryptographyECKey | CryptographyRSAKey:
        if self.alg == "ES256":
            return CryptographyECKey(self._private_key, self.alg)
        return CryptographyRSAKey(self._private_key, self.alg)

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK for the JWKS (``kid``, ``alg``, ``use: sig``)."""
        return {
            **_public_members(self._private_key.public_key()),
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
        }


def generate_signing_key(alg: str = "ES256") -> SigningKey:
    """A fresh key (P-256 for ES256, RSA 2048 for RS256); kid = its RFC 7638 thumbprint."""
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
    else:
        raise ValueError(f"signing algorithm must be one of {ALLOWED_ALGORITHMS}")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    kid = jwk_thumbprint(_public_members(private_key.public_key()))
    return SigningKey(kid=kid, alg=alg, private_pem=pem)


def access_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    scopes: Iterable[str],
    ttl_s: int,
    client_id: str,
    **extra: object,
) -> dict[str, object]:
    """The registered claims of an access token (RFC 9068 section 2.2) valid from now for
    ``ttl_s``, with ``extra`` (kind, client_type, ...) beside them. ``client_id`` is the
    client the token was issued to: a partner's or service's id, or the first-party client
    type (``app``, ``web``, ``mini_program``) for a user's login."""
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "scope": " ".join(sorted(scopes)),
        **extra,
    }


def issue_token(claims: Mapping[str, Any], *, key: SigningKey) -> str:
    """Sign ``claims`` as an access token (header ``alg``, ``kid``, ``typ: at+jwt``)."""
    if key.alg not in ALLOWED_ALGORITHMS:  # SigningKey refuses it too; never rely on one check
        raise ValueError(f"signing algorithm must be one of {ALLOWED_ALGORITHMS}")
    token: str = jwt.encode(
        dict(claims),
        key._jose_key,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )
    return token


class _PreparedKey(NamedTuple):
    alg: str
    jwk: dict[str, str]
    key: CryptographyECKey | CryptographyRSAKey


def _prepare(jwk: Mapping[str, Any]) -> _PreparedKey:
    """One public JWK, checked and turned into a python-jose key pinned to its algorithm."""
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
        raise ValueError("missing or malformed kid")
    use = jwk.get("use", "sig")
    if use != "sig":
        raise ValueError("use is not sig")
    kty = jwk.get("kty")
    public_key: PublicKey
    if kty == "EC":
        alg = "ES256"
        if jwk.get("crv") != "P-256":
            raise ValueError("EC keys must be on P-256")
        x, y = _b64url_decode(jwk.get("x", "")), _b64url_decode(jwk.get("y", ""))
        if len(x) != 32 or len(y) != 32:
            raise ValueError("bad EC coordinates")
        # Raises ValueError for a point that is not on the curve.
        public_key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    elif kty == "RSA":
        alg = "RS256"
        n, e = _b64url_decode(jwk.get("n", "")), _b64url_decode(jwk.get("e", ""))
        if not n or not e:
            raise ValueError("bad RSA parameters")
        public_key = rsa.RSAPublicNumbers(
            int.from_bytes(e, "big"), int.from_bytes(n, "big")
        ).public_key()
    else:
        raise ValueError("key type not allowed")
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        raise ValueError("alg not allowed for this key")
    _check_key_fits(alg, public_key)
    public = {**_public_members(public_key), "kid": kid, "alg": alg, "use": "sig"}
    prepared = (
        CryptographyECKey(public_key, alg)
        if alg == "ES256"
        else CryptographyRSAKey(public_key, alg)
    )
    return _PreparedKey(alg, public, prepared)


class KeySet:
    """Public verification keys by ``kid``, from a JWKS (``{"keys": [...]}``) or a list of
    JWKs. Unusable keys are ignored (and logged); a kid listed twice is dropped."""

    def __init__(self, jwks: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> None:
        if isinstance(jwks, Mapping):
            entries = jwks.get("keys")
            if not isinstance(entries, list):
                raise ValueError("a JWKS needs a 'keys' list")
        else:
            entries = list(jwks)
        keys: dict[str, _PreparedKey] = {}
        duplicated: set[str] = set()
        for entry in entries:
            if not isinstance(entry, Mapping):
                logger.warning("ignoring a JWKS entry that is not an object")
                continue
            try:
                prepared = _prepare(entry)
            except (ValueError, TypeError, JOSEError) as exc:
                logger.warning("ignoring JWK %.40r: %s", entry.get("kid"), exc)
                continue
            kid = prepared.jwk["kid"]
            if kid in keys or kid in duplicated:
                duplicated.add(kid)
                keys.pop(kid, None)
                logger.warning("ignoring JWK %.40r: kid listed more than once", kid)
                continue
            keys[kid] = prepared
        self._keys = keys

    @classmethod
    def of(cls, *keys: SigningKey) -> KeySet:
        """The public halves of local signing keys (an issuer verifying its own tokens)."""
        return cls([key.public_jwk() for key in keys])

    def get(self, kid: str) -> dict[str, str] | None:
        """The public JWK for ``kid`` (a copy), or None."""
        prepared = self._keys.get(kid)
        return dict(prepared.jwk) if prepared else None

    def _prepared(self, kid: str) -> _PreparedKey | None:
        return self._keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [dict(prepared.jwk) for prepared in self._keys.values()]}


# --------------------------------------------------------------------------- verification


class _Header(NamedTuple):
    alg: str
    kid: str


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("duplicate member")
        result[name] = value
    return result


def _inspect(token: str) -> _Header:
    """Every check that needs no key: shape, algorithm, type, header parameters, kid."""
    if not isinstance(token, str):
        raise InvalidToken("malformed token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token: expected three parts")
    header_part, payload_part, signature_part = parts
    if not header_part or not payload_part:
        raise InvalidToken("malformed token")
    if not all(_B64URL_RE.fullmatch(part) for part in parts):
        raise InvalidToken("malformed token: not base64url")
    try:
        header = json.loads(_b64url_decode(header_part), object_pairs_hook=_no_duplicates)
    except ValueError as exc:  # also UnicodeDecodeError and JSONDecodeError
        raise InvalidToken("malformed token header") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed token header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise InvalidToken(f"header parameter {name!r} not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES:
        raise InvalidToken("wrong token type")
    kid = header.get("kid")
    if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH or not _KID_RE.fullmatch(kid):
        raise InvalidToken("invalid key id")
    if not signature_part:
        raise InvalidToken("missing signature")
    return _Header(alg, kid)


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required or name in claims:
            raise InvalidToken(f"missing claim: {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidToken(f"invalid claim: {name}")
    return float(value)


def _check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, leeway_s: int
) -> None:
    """Every claim check, after the signature: each failure named by the check that failed,
    never by what a library's message says."""
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise InvalidToken(f"missing claim: {name}")
    for name in ("sub", "jti"):
        value = claims.get(name)
        if value is None:
            raise InvalidToken(f"missing claim: {name}")
        if not isinstance(value, str) or not value:
            raise InvalidToken(f"invalid claim: {name}")
    if claims.get("iss") != issuer:
        raise InvalidToken("wrong issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or audience not in audiences:
        raise InvalidToken("wrong audience")
    if not all(isinstance(item, str) for item in audiences):
        raise InvalidToken("wrong audience")
    exp = _numeric(claims, "exp", required=True)
    iat = _numeric(claims, "iat", required=True)
    nbf = _numeric(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if now >= exp + leeway_s:
        raise InvalidToken("token expired")
    if nbf is not None and nbf > now + leeway_s:
        raise InvalidToken("token not yet valid")
    if iat > now + leeway_s:
        raise InvalidToken("token issued in the future")


def _verify_inspected(
    token: str,
    header: _Header,
    *,
    keys: KeySet,
    issuer: str,
    audience: str,
    now: float,
    leeway_s: int,
) -> dict[str, Any]:
    prepared = keys._prepared(header.kid)
    if prepared is None:
        raise InvalidToken("unknown signing key")
    if prepared.alg != header.alg:
        raise InvalidToken("key does not match algorithm")
    try:
        payload = _b64url_decode(token.split(".")[1])
    except ValueError:
        raise InvalidToken("malformed token payload") from None
    # python-jose checks only the signature, with the one key and algorithm picked above;
    # shape, header, key and algorithm were checked before, so any failure is the signature.
    try:
        jws.verify(token, prepared.key, algorithms=[header.alg])
    except (JOSEError, TypeError, ValueError, OverflowError):
        raise InvalidToken("invalid signature") from None
    try:
        claims = json.loads(payload, object_pairs_hook=_no_duplicates)
    except ValueError:  # also UnicodeDecodeError and JSONDecodeError
        raise InvalidToken("malformed token payload") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token payload")
    _check_claims(claims, issuer=issuer, audience=audience, now=now, leeway_s=leeway_s)
    return claims


def verify_token(
    token: str,
    *,
    keys: KeySet,
    issuer: str,
    audience: str,
    now: float | None = None,
    leeway_s: int = 0,
) -> dict[str, Any]:
    """The verified claims of an access token, or :class:`InvalidToken`.

    ``now`` (epoch seconds) pins the clock; ``leeway_s`` tolerates clock skew on ``exp``,
    ``nbf`` and ``iat``."""
    if leeway_s < 0:
        raise ValueError("leeway_s must not be negative")
    header = _inspect(token)
    return _verify_inspected(
        token,
        header,
        keys=keys,
        issuer=issuer,
        audience=audience,
        now=time.time() if now is None else now,
        leeway_s=leeway_s,
    )


# --------------------------------------------------------------------------- principal


class Principal(BaseModel):
    """Who is calling, from a verified token."""

    model_config = ConfigDict(frozen=True, strict=True)

    subject: str
    kind: PrincipalKind
    scopes: frozenset[str]
    client_type: ClientType
    verified: bool = False
    minor: bool = False
    guardian_consent: bool = False
    #: A partner's registered purposes; a service's, as its scopes name them.
    purposes: frozenset[str] = frozenset()
    token_id: str
    expires_at: int
    #: When the user last signed in with their password (OIDC ``auth_time``); a refreshed
    #: token keeps its login's. None for tokens that carry none.
    auth_time: int | None = None

    def has(self, scope: Scope | str) -> bool:
        return str(scope) in self.scopes

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from verified claims; malformed claims or scopes foreign to the kind
        refuse the token."""
        kind = claims.get("kind")
        if kind not in SCOPES_BY_KIND:
            raise InvalidToken("invalid claim: kind")
        client_type = claims.get("client_type")
        if client_type not in ("app", "web", "mini_program", "server"):
            raise InvalidToken("invalid claim: client_type")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("invalid claim: scope")
        scopes = frozenset(scope.split())
        if not scopes <= SCOPES_BY_KIND[kind]:
            raise InvalidToken(f"scope not allowed for a {kind} token")
        purposes = claims.get("purposes", [])
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise InvalidToken("invalid claim: purposes")
        if kind == "service":
            # An internal service is a server and acts only under the purposes its scopes
            # name (OB-4-7): nothing in the token may widen them.
            if client_type != "server":
                raise InvalidToken("a service token must be for a server client")
            if not set(purposes) <= {service_purpose(s) for s in scopes}:
                raise InvalidToken("purposes not named by the service token's scopes")
        flags: dict[str, bool] = {}
        for name in ("verified", "minor", "guardian_consent"):
            value = claims.get(name, False)
            if not isinstance(value, bool):
                raise InvalidToken(f"invalid claim: {name}")
            flags[name] = value
        subject, token_id, exp = claims.get("sub"), claims.get("jti"), claims.get("exp")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("invalid claim: sub")
        if not isinstance(token_id, str) or not token_id:
            raise InvalidToken("invalid claim: jti")
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
            raise InvalidToken("invalid claim: exp")
        auth_time = claims.get("auth_time")
        if auth_time is not None and (
            isinstance(auth_time, bool) or not isinstance(auth_time, int)
        ):
            raise InvalidToken("invalid claim: auth_time")
        return cls(
            subject=subject,
            kind=kind,
            scopes=scopes,
            client_type=client_type,
            purposes=frozenset(purposes),
            token_id=token_id,
            expires_at=int(exp),
            auth_time=auth_time,
            **flags,
        )


# --------------------------------------------------------------------------- key sources

KeySource = Callable[[str | None], Awaitable[KeySet]]


def static_key_source(keys: KeySet) -> KeySource:
    """A key source for a fixed key set (the issuer itself, tests)."""

    async def key_set(kid: str | None = None) -> KeySet:
        return keys

    return key_set


class JwksClient:
    """Identity's JWKS over httpx, cached ``ttl_s``; an unknown ``kid`` triggers a refetch
    at most once per ``min_refresh_interval_s``. If identity cannot be reached, the last
    set is served for up to ``max_stale_s`` after it was fetched; with none, 503."""

    MAX_BODY_BYTES: Final = 256 * 1024

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        ttl_s: float = 300,
        min_refresh_interval_s: float = 30,
        max_stale_s: float = 3600,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self.ttl_s = ttl_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self.max_stale_s = max_stale_s
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _cached(self, kid: str | None, now: float) -> KeySet | None:
        """The cached set, if it answers without a fetch."""
        keys = self._keys
        if keys is None:
            return None
        fresh = now - self._fetched_at < self.ttl_s
        if fresh and (kid is None or kid in keys):
            return keys
        if now - self._attempted_at < self.min_refresh_interval_s:
            # Fetched (or tried) moments ago: an unknown kid stays unknown until later.
            return self._stale_or_fail(now)
        return None

    def _stale_or_fail(self, now: float) -> KeySet:
        if self._keys is not None and now - self._fetched_at < self.max_stale_s:
            return self._keys
        raise ServiceUnavailable("signing keys are unavailable")

    async def key_set(self, kid: str | None = None) -> KeySet:
        cached = self._cached(kid, self._clock())
        if cached is not None:
            return cached
        async with self._lock:
            now = self._clock()
            cached = self._cached(kid, now)
            if cached is not None:
                return cached
            if self._keys is None and now - self._attempted_at < self.min_refresh_interval_s:
                raise ServiceUnavailable("signing keys are unavailable")
            return await self._fetch(now)

    async def _fetch(self, now: float) -> KeySet:
        self._attempted_at = now
        self.fetches += 1
        try:
            response = await self._client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > self.MAX_BODY_BYTES:
                raise ValueError("JWKS too large")
            body = response.json()
            if not isinstance(body, dict):
                raise ValueError("a JWKS is a JSON object")
            keys = KeySet(body)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("fetching the JWKS failed: %s", type(exc).__name__)
            return self._stale_or_fail(now)
        if not len(keys):
            logger.warning("the JWKS holds no usable key")
        self._keys, self._fetched_at = keys, now
        return keys

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


# --------------------------------------------------------------------------- verifier


class _Verified:
    __slots__ = ("claims", "exp", "principal")

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.exp = float(claims["exp"])
        self.principal: Principal | None = None


class TokenVerifier:
    """Verifies access tokens for one issuer and audience, with a bounded LRU cache of
    verified tokens; a cached token is never served at or after its ``exp``."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        key_source: KeySource,
        leeway_s: int = 0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if leeway_s < 0:
            raise ValueError("leeway_s must not be negative")
        self.issuer = issuer
        self.audience = audience
        self.key_source = key_source
        self.leeway_s = leeway_s
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()

    async def _verified(self, token: str) -> _Verified:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long" if isinstance(token, str) else "malformed token")
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        now = self._clock()
        entry = self._cache.get(digest)
        if entry is not None:
            if now < entry.exp:
                self._cache.move_to_end(digest)
                return entry
            del self._cache[digest]
        header = _inspect(token)
        keys = await self.key_source(header.kid)
        claims = _verify_inspected(
            token,
            header,
            keys=keys,
            issuer=self.issuer,
            audience=self.audience,
            now=self._clock(),
            leeway_s=self.leeway_s,
        )
        entry = _Verified(claims)
        if self.cache_size > 0:
            self._cache[digest] = entry
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims (a shallow copy), or :class:`InvalidToken`."""
        return dict((await self._verified(token)).claims)

    async def principal(self, authorization_header: str | None) -> Principal:
        """The caller from an ``Authorization: Bearer <token>`` header."""
        if not authorization_header:
            raise InvalidToken("missing bearer token", challenge="Bearer")
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise InvalidToken("expected a bearer token")
        entry = await self._verified(token)
        if entry.principal is None:
            entry.principal = Principal.from_claims(entry.claims)
        return entry.principal

    def clear_cache(self) -> None:
        self._cache.clear()


# --------------------------------------------------------------------------- FastAPI glue


#: The bearer access token in the apps' OpenAPI (``securitySchemes``, each operation needing
#: it); :func:`current_principal` reads and checks the header itself.
BEARER_SCHEME: Final = "bearerAccessToken"
#: Why a verified token of a subject identity revoked is refused (kit.revocation).
REVOKED_DETAIL: Final = "the token's account was closed or its client revoked"
_documented_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    bearerFormat="JWT",
    description="An access token of identity (RFC 9068, `typ: at+jwt`), sent as "
    "`Authorization: Bearer <token>` (RFC 6750).",
)


async def current_principal(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_documented_bearer)],
) -> Principal:
    """Dependency: the verified caller, by ``request.app.state.token_verifier``."""
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.token_verifier is not a TokenVerifier")
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise InvalidToken("more than one authorization header")
    principal = await verifier.principal(headers[0] if headers else None)
    revocations = getattr(request.app.state, "revocations", None)  # kit.revocation
    if revocations is not None and revocations.is_revoked(principal.subject):
        raise InvalidToken(REVOKED_DETAIL)
    # A user's restriction or legal hold (kit.restriction, OB-L-2, OB-L-5): the purpose
    # the gateway forwarded is refused here too, for a caller behind the gateway's back.
    restrictions = getattr(request.app.state, "restrictions", None)
    purpose = request.headers.get("x-purpose")
    if principal.kind == "user" and restrictions is not None and purpose:
        restrictions.check(principal.subject, purpose)
    return principal


def require(*scopes: Scope) -> Any:
    """``Depends`` giving the verified :class:`Principal` when it holds every scope, else
    :class:`InsufficientScope` (403) naming the missing ones."""
    needed = tuple(dict.fromkeys(Scope(scope) for scope in scopes))

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        missing = [scope for scope in needed if not principal.has(scope)]
        if missing:
            raise InsufficientScope(missing)
        return principal

    return Depends(dependency)
