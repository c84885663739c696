"""Validators and caching for cacheable answers (RFC 9110 section 8.8 and 13, RFC 9111).

:func:`cacheable` gives an answer a strong ``ETag`` (a digest of its content), its
``Last-Modified`` when the resource knows it, and ``Cache-Control``; a request whose
``If-None-Match`` names the tag (weak comparison, ``*`` included), or, without
``If-None-Match``, whose ``If-Modified-Since`` is not older than ``Last-Modified``, gets
304 Not Modified with the same validators and no content (section 13.2.2's order).

Cache-Control values the suite uses: :data:`IMMUTABLE` for answers that never change (a
diff of two published policy versions), :data:`REVALIDATE` for public answers that may
change (the policy in effect, the archive, one version: its ``status`` moves from upcoming
to current to superseded), so a cache keeps them and asks each time, cheaply.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Final

from fastapi import Request, Response
from pydantic import BaseModel

__all__ = ["IMMUTABLE", "NOT_MODIFIED_RESPONSE", "REVALIDATE", "cacheable", "json_answer"]

IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "public, no-cache"
#: For routes' OpenAPI ``responses``.
NOT_MODIFIED_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    304: {"description": "Not modified (If-None-Match)"}
}


def json_answer(model: BaseModel | list[BaseModel]) -> Response:
    """A model (or a list of them) as the JSON FastAPI would have answered."""
    if isinstance(model, list):
        content = b"[" + b",".join(item.model_dump_json().encode() for item in model) + b"]"
    else:
        content = model.model_dump_json().encode()
    return Response(content, media_type="application/json")


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _tags(header: str) -> list[str]:
    """The entity tags of an ``If-None-Match`` value, without their weak prefix."""
    found = []
    for item in header.split(","):
        tag = item.strip()
        found.append(tag[2:] if tag.startswith("W/") else tag)
    return [tag for tag in found if tag]


def _not_modified_since(request: Request, last_modified: datetime | None) -> bool:
    since = request.headers.get("if-modified-since")
    if since is None or last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored (RFC 9110 13.1.3)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return last_modified.replace(microsecond=0) <= when


def cacheable(
    request: Request,
    response: Response,
    *,
    cache_control: str,
    last_modified: datetime | None = None,
) -> Response:
    """``response`` with its validators and ``Cache-Control``, or 304 if the client's copy
    is current. ``last_modified`` is aware (UTC when naive)."""
    if last_modified is not None and last_modified.tzinfo is None:
        last_modified = last_modified.replace(tzinfo=UTC)
    validators = {"ETag": _etag(bytes(response.body)), "Cache-Control": cache_control}
    if last_modified is not None:
        validators["Last-Modified"] = format_datetime(last_modified.astimezone(UTC), usegmt=True)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        fresh = "*" in tags or validators["ETag"] in tags
    else:
        fresh = _not_modified_since(request, last_modified)
    if fresh:
        return Response(status_code=304, headers=validators)
    response.headers.update(validators)
    return response
