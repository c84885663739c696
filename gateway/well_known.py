"""Identity's RFC 8414 metadata where section 3.1 puts it for an issuer with a path: the
issuer is ``<origin>/identity``, so ``/.well-known/oauth-authorization-server/identity``
(the well-known part between host and path). The same document stays at
``/identity/.well-known/oauth-authorization-server`` (``policy/routes.yaml``), where
clients that append the suffix look."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response

from gateway.proxy import UpstreamDown, UpstreamTimeout, forward
from kit.errors import problem

ISSUER_PATH: Final = "identity"
METADATA_SUFFIX: Final = "/.well-known/oauth-authorization-server"

router = APIRouter()


@router.get(f"{METADATA_SUFFIX}/{ISSUER_PATH}", include_in_schema=False)
async def identity_metadata(request: Request) -> Response:
    upstreams = request.app.state.gateway.upstreams
    try:
        answer = await forward(
            upstreams, "identity", method="GET", path=METADATA_SUFFIX, query=b"",
            headers=[("accept", "application/json")], body=b"",
        )  # fmt: skip
    except UpstreamTimeout:
        return problem(504, detail="identity did not answer in time", code="upstream-timeout")
    except UpstreamDown:
        return problem(502, detail="identity is unreachable", code="upstream-unavailable")
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.content_type,
        headers={"Cache-Control": "public, max-age=300"},
    )
