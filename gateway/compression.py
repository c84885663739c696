"""Content coding at the gateway (RFC 9110 sections 8.4, 12.5.3 and 12.5.5).

The gateway holds each answer whole (it filters them), so it compresses in place, without
a streaming middleware on the hot path: an answer of at least ``GATEWAY_GZIP_MIN_BYTES``
of a textual media type (JSON, problem+json, HTML, text) is sent with
``Content-Encoding: gzip`` when the request's ``Accept-Encoding`` allows gzip (its q-value
above 0, by name or by ``*``); every answer of that size says ``Vary: Accept-Encoding``,
so a cache keeps the two codings apart. A strong ``ETag`` becomes weak once compressed
(the bytes differ; ``If-None-Match`` compares weakly, so revalidation still matches).
"""

from __future__ import annotations

import gzip
from typing import Final

from starlette.responses import Response

__all__ = ["accepts_gzip", "compress"]

#: The fastest level, as nginx's ``gzip_comp_level`` defaults to: on a 4 kB JSON answer
#: about half the time of level 6 for some 5 % more bytes (``python -m bench.encoding``).
GZIP_LEVEL: Final = 1
_TEXTUAL_SUFFIXES: Final = ("json", "xml", "javascript")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: named (or ``x-gzip``), else by ``*``, with a
    q-value above 0."""
    named: float | None = None
    anything: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            named = quality
        elif coding == "*":
            anything = quality
    chosen = named if named is not None else anything
    return chosen is not None and chosen > 0


def _textual(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media.endswith(_TEXTUAL_SUFFIXES)


#: The headers :func:`compress` reads, as Starlette keeps them (lower-case bytes).
_READ: Final = frozenset({b"content-encoding", b"content-type", b"vary", b"etag"})


def compress(response: Response, *, accept_encoding: str, min_bytes: int) -> None:
    """Compress ``response`` in place if it is long and textual enough and the client
    accepts gzip; ``min_bytes`` 0 turns compression off."""
    body = response.body
    if min_bytes <= 0 or len(body) < min_bytes:
        return
    found: dict[bytes, str] = {}  # the first of each, read once from the raw headers
    for name, value in response.raw_headers:
        if name in _READ and name not in found:
            found[name] = value.decode("latin-1")
    if b"content-encoding" in found or not _textual(found.get(b"content-type", "")):
        return
    vary = found.get(b"vary")
    if vary is None:
        response.raw_headers.append((b"vary", b"Accept-Encoding"))
    elif "accept-encoding" not in vary.lower() and vary.strip() != "*":
        response.headers["Vary"] = f"{vary}, Accept-Encoding"
    if not accepts_gzip(accept_encoding):
        return
    response.body = gzip.compress(bytes(body), compresslevel=GZIP_LEVEL, mtime=0)
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(response.body))
    etag = found.get(b"etag")
    if etag is not None and not etag.startswith("W/"):
        response.headers["ETag"] = "W/" + etag
