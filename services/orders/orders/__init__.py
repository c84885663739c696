"""Orders (policy 2C, 2D): placing an order with the minimum it needs, recording its facts,
and the owner's view of their orders.

- ``schemas``  the strict order request and the owner's view
- ``service``  the logic, no HTTP
- ``router``   ``/orders``
- ``tax_id``   what a taxpayer ID on an invoice must look like
"""
