"""The authoritative identity-authentication provider (OB-2A-2), behind one adapter.

- :class:`AuthorityAdapter` is the protocol: ``check(real_name=, id_number=, face_image=)``
  answers an :class:`AuthorityResult` (matched, level, the provider's transaction
  reference) or raises :class:`ProviderUnavailable` (503, with ``retry_after_s``).
- :class:`SandboxAuthority` answers deterministically, for development and tests.
- :class:`HttpAuthority` calls a provider over HTTPS with httpx, retrying transient faults.
- :func:`authority_from_settings` picks one from ``IDENTITY_AUTHORITY_*``.

No adapter logs, stores or returns the name, the ID number or the face image: the image
lives in memory for the duration of the call only (OB-2A-3).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, get_args

import httpx

from kit.errors import DomainError
from services.identity.config import Settings

__all__ = [
    "AuthorityAdapter",
    "AuthorityResult",
    "HttpAuthority",
    "Level",
    "ProviderUnavailable",
    "SandboxAuthority",
    "authority_from_settings",
]

logger = logging.getLogger("services.identity.verification.authority")

Level = Literal["real_name", "real_person"]
LEVELS: Final[tuple[str, ...]] = get_args(Level)
DEFAULT_RETRY_AFTER_S: Final = 30
MAX_REFERENCE_LENGTH: Final = 200


class ProviderUnavailable(DomainError):
    """The provider could not answer (down, timing out, or answering nonsense). Nothing was
    decided: the caller may retry after ``retry_after_s`` seconds, which the problem
    response also sends as a ``Retry-After`` header."""

    status, code, title = 503, "provider-unavailable", "Verification provider unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        super().__init__(detail, extra={"retry_after_s": retry_after_s})
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


@dataclass(frozen=True)
class AuthorityResult:
    """The provider's answer. ``reference`` is its transaction id: no personal data."""

    matched: bool
    level: Level
    reference: str


class AuthorityAdapter(Protocol):
    async def check(
        self, *, real_name: str, id_number: str, face_image: bytes | None
    ) -> AuthorityResult:
        """Whether ``real_name`` and ``id_number`` (and the face, if given) belong together,
        at ``real_person`` level with a face image, ``real_name`` level without. Raises
        :class:`ProviderUnavailable` when the provider cannot answer."""
        ...


class SandboxAuthority:
    """A deterministic stand-in for the provider. Outcomes by the ID number's sequence
    code (its 15th to 17th characters) and the face image:

    - sequence code ``999``: mismatch;
    - sequence code ``998``: :class:`ProviderUnavailable` (``retry_after_s`` = 5);
    - anything else: match, at ``real_person`` level with a face image, ``real_name``
      without; except that a face image whose bytes start with ``b"NOFACE"`` is a
      mismatch (at ``real_person`` level).

    The reference is a random ``sandbox-<uuid>``. The sandbox must never serve production
    (:func:`authority_from_settings` refuses it there): it matches anyone.
    """

    MISMATCH_SEQUENCE: Final = "999"
    UNAVAILABLE_SEQUENCE: Final = "998"
    NO_FACE_PREFIX: Final = b"NOFACE"
    RETRY_AFTER_S: Final = 5

    async def check(
        self, *, real_name: str, id_number: str, face_image: bytes | None
    ) -> AuthorityResult:
        sequence = id_number[14:17]
        if sequence == self.UNAVAILABLE_SEQUENCE:
            raise ProviderUnavailable(
                "the sandbox provider is unavailable (sequence code 998)",
                retry_after_s=self.RETRY_AFTER_S,
            )
        level: Level = "real_name" if face_image is None else "real_person"
        matched = sequence != self.MISMATCH_SEQUENCE and not (
            face_image is not None and face_image.startswith(self.NO_FACE_PREFIX)
        )
        return AuthorityResult(matched=matched, level=level, reference=f"sandbox-{uuid.uuid4()}")


class HttpAuthority:
    """A provider reached over HTTP(S).

    ``POST url`` with HTTP basic auth (``client_id``/``client_secret``) and the JSON body
    ``{"name", "id_number", "face_image"?}`` (the image base64-encoded, only when given).
    A 200 answer ``{"matched": bool, "level": "real_name"|"real_person", "reference": str}``
    is the result. Connection errors, timeouts and 5xx answers are retried up to ``retries``
    times with a short exponential backoff; when they persist, and for any other answer
    (4xx, a malformed body), :class:`ProviderUnavailable` is raised. A ``Retry-After``
    header of a 429 or 503 answer is passed on. Logs carry status codes and error types
    only, never the request or response body.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        timeout_s: float,
        retries: int,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
    ) -> None:
        if not url:
            raise ValueError("the authority URL is required")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._transport = transport

    def __repr__(self) -> str:  # never the client secret
        return f"HttpAuthority(url={self.url!r}, retries={self.retries})"

    async def check(
        self, *, real_name: str, id_number: str, face_image: bytes | None
    ) -> AuthorityResult:
        body: dict[str, str] = {"name": real_name, "id_number": id_number}
        if face_image is not None:
            body["face_image"] = base64.b64encode(face_image).decode("ascii")
        retry_after = DEFAULT_RETRY_AFTER_S
        async with httpx.AsyncClient(
            transport=self._transport, timeout=self.timeout_s, auth=self._auth
        ) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    await asyncio.sleep(
                        min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
                    )
                try:
                    response = await client.post(self.url, json=body)
                except httpx.TransportError as exc:  # connection errors and timeouts
                    logger.warning(
                        "authority call failed (attempt %d of %d): %s",
                        attempt + 1,
                        self.retries + 1,
                        type(exc).__name__,
                    )
                    continue
                retry_after = _retry_after(response) or retry_after
                if response.status_code >= 500:
                    logger.warning(
                        "authority answered %d (attempt %d of %d)",
                        response.status_code,
                        attempt + 1,
                        self.retries + 1,
                    )
                    continue
                if response.status_code != 200:
                    logger.warning("authority refused the call with %d", response.status_code)
                    raise ProviderUnavailable(
                        f"the verification provider refused the call ({response.status_code})",
                        retry_after_s=retry_after,
                    )
                return _parse_result(response)
        raise ProviderUnavailable(
            "the verification provider did not answer; try again later",
            retry_after_s=retry_after,
        )


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return max(1, min(int(value), 3600)) if value.isdigit() else None


def _parse_result(response: httpx.Response) -> AuthorityResult:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        matched, level, reference = (payload.get(k) for k in ("matched", "level", "reference"))
        if (
            isinstance(matched, bool)
            and level in LEVELS
            and isinstance(reference, str)
            and 0 < len(reference) <= MAX_REFERENCE_LENGTH
        ):
            return AuthorityResult(
                matched=matched,
                level="real_person" if level == "real_person" else "real_name",
                reference=reference,
            )
    logger.warning("authority answered 200 with a malformed body")
    raise ProviderUnavailable("the verification provider gave a malformed answer")


def authority_from_settings(settings: Settings) -> AuthorityAdapter:
    """The adapter ``IDENTITY_AUTHORITY_ADAPTER`` names. The sandbox matches anyone, so it
    is refused when ``environment`` is ``production``."""
    if settings.authority_adapter == "http":
        return HttpAuthority(
            url=settings.authority_url,
            client_id=settings.authority_client_id,
            client_secret=settings.authority_client_secret.get_secret_value(),
            timeout_s=settings.authority_timeout_s,
            retries=settings.authority_retries,
        )
    if settings.environment == "production":
        raise ValueError(
            "the sandbox verification authority cannot serve production: set "
            "IDENTITY_AUTHORITY_ADAPTER=http and IDENTITY_AUTHORITY_URL"
        )
    return SandboxAuthority()
