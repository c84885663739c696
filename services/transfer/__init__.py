"""Cross-border recipients, their legal bases, and transfers that keep the law. Policy section 4
(storage location) and 3.

- ``config``  settings (environment prefix ``TRANSFER_``)
- ``models``  tables, in this service's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory services.transfer.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``transfer``)
"""
