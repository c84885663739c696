"""Tokens: signing keys and the JWKS, access tokens, refresh-token families, and the
OAuth2 client-credentials grant for partners.

- ``service``  key generation and rotation, issuing, refreshing, revoking (no HTTP)
- ``schemas``  token responses, JWKS and issuer metadata
- ``router``   ``/.well-known/*``, ``/login``, ``/token/refresh``, ``/logout``, ``/oauth2/token``
"""
