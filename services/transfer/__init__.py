"""Cross-border recipients, their legal bases, and transfers that keep the law. Policy section 4
(storage location) and 3.

- ``config``        settings (environment prefix ``TRANSFER_``)
- ``models``        tables, in this service's own registry and database
- ``main``          the app factory (``uvicorn --factory services.transfer.main:create_app``)
- ``dependencies``  settings, review rules, the day and the consent checks for the routers
- ``recipients``    overseas recipients: agreement, legal basis, assessments, disclosure
- ``transfers``     transfers: checks, package, delivery, records, the user's view
- ``migrations/versions``  Alembic revisions (branch ``transfer``)
"""
