"""Cart, orders, delivery, invoices, customs data and partner assignment. Policy sections 2C,
2D and 4.

- ``config``        settings (environment prefix ``ORDERS_``)
- ``models``        tables, in this service's own registry and database
- ``dependencies``  who may call what (buyers by scope, staff for goods)
- ``goods``         goods for sale and discount codes (``/goods``, ``/admin/...``)
- ``cart``          the cart, shared-cart links, price-drop reminders (``/cart``,
  ``/shared-carts``)
- ``orders``        placing orders and the owner's view (``/orders``)
- ``delivery``      partner assignment, the partners' privacy-waybill view, delivery status
  (``/admin/orders/{id}/partners``, ``/partner/orders``)
- ``location``      address autofill and nearby goods, only with the location consent
  (``/location``)
- ``retention``     the sweeper that deletes each personal field when its period ends
  (``/admin/retention/sweep``, ``python -m services.orders sweep``)
- ``main``          the FastAPI app factory (``uvicorn --factory services.orders.main:create_app``)
- ``migrations/versions``  Alembic revisions (branch ``orders``)
"""
