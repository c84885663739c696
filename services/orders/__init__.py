"""Cart, orders, delivery, invoices, customs data and partner assignment. Policy sections 2C, 2D
and 4.

- ``config``  settings (environment prefix ``ORDERS_``)
- ``models``  tables, in this service's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory services.orders.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``orders``)
"""
