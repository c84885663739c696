"""Goods for sale and discount codes: what the shop sells and takes off, set by staff.

- ``schemas``  goods and discount shapes
- ``service``  the logic, no HTTP
- ``router``   ``/goods`` (public), ``/admin/goods`` and ``/admin/discounts`` (staff)
"""
