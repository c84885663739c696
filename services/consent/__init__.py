"""The privacy center: policy versions, consents, rights requests and the processing ledger. Policy
sections 2G, 2H, 2J, 4 and 5.

- ``config``  settings (environment prefix ``CONSENT_``)
- ``models``  tables, in this service's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory services.consent.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``consent``)
"""
