"""Cart, orders, delivery, invoices, customs data and partner assignment. Policy sections 2C,
2D and 4.

- ``config``        settings (environment prefix ``ORDERS_``)
- ``models``        tables, in this service's own registry and database
- ``dependencies``  who may call what (buyers by scope, staff for goods)
- ``goods``         goods for sale and discount codes (``/goods``, ``/admin/...``)
- ``cart``          the cart, shared-cart links, price-drop reminders (``/cart``,
  ``/shared-carts``)
- ``orders``        placing orders and the owner's view (``/orders``)
- ``main``          the FastAPI app factory (``uvicorn --factory services.orders.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``orders``)
"""
