"""The API gateway: authorisation, purpose binding, consent enforcement and minimum-necessary field
filtering.

- ``config``  settings (environment prefix ``GATEWAY_``)
- ``models``  tables, in this app's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory gateway.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``gateway``)
"""
