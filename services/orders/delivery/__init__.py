"""Partners (policy 2C, 3.3; OB-3-1, OB-3-2, OB-2D-7): staff assign an order to a logistics
partner and, for cross-border goods, a customs broker; each partner reads only the orders
assigned to it, under its one entrusted purpose, with the fields and masks the catalogue
gives that purpose (the privacy waybill); the logistics partner reports delivery status.

- ``schemas``  assignment, partner views and delivery shapes
- ``service``  the logic, no HTTP
- ``router``   ``/admin/orders/{id}/partners`` (staff), ``/partner/orders`` (partners)
"""
