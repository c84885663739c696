"""The privacy center web app, served by the gateway under ``/privacy/``.

Server-rendered pages (Jinja2, no script) for a person using the shop: sign in with phone
and password, see and change consents (cross-border ones per overseas recipient), read the
processing ledger, request an access export and download it, request deletion, see which
overseas recipients got their data, read the policy's versions and their diffs. The pages
are a client of the gateway like any app: each page calls the gateway's public routes
(``/identity/login``, ``/consent/...``, ``/transfer/...``) in process,
through the gateway's own middleware and checks, with the access token the sign-in put in an
HttpOnly, SameSite=Strict cookie (:mod:`gateway.privacy_web.client`). Simplified Chinese
first, English second (:mod:`gateway.privacy_web.texts`).
"""

from gateway.privacy_web.router import router

__all__ = ["router"]
