"""Retention (policy 4, OB-4-1, OB-4-2): each personal field of an order is kept for its own
period from the order's completion, as the catalogue says, then deleted; an order with no
personal field left is anonymised, its non-personal facts kept for statistics.

- ``schemas``  the sweep report
- ``service``  the sweep and the scheduled sweeper; no HTTP
- ``router``   ``POST /admin/retention/sweep`` (staff with ``admin:policy``)

Also from the shell: ``python -m services.orders sweep``.
"""
