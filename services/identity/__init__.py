"""Real-name verification, accounts, the token issuer (JWKS) and partner clients. Policy sections
2A and 3.

- ``config``  settings (environment prefix ``IDENTITY_``)
- ``models``  tables, in this service's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory services.identity.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``identity``)
"""
