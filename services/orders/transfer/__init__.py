"""The transfer service's read of an order, under the purpose ``cross_border.transfer``
(policy 4; OB-4-4, OB-4-7): an internal service with a service token asks for named
fields of one subject's order and gets only those the purpose may see, masked as the
catalogue says; every read is a processing record.

- ``schemas``  the answer's shape
- ``service``  the logic, no HTTP
- ``router``   ``GET /transfer/orders/{order_id}?subject=&fields=`` (service tokens only)
"""
