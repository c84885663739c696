"""Location features (policy 2G, OB-2G-1): address autofill and nearby goods from the
device's coordinates, only with the additional consent ``location``; placing orders never
needs it (OB-0-2). Coordinates live only inside the request.

- ``schemas``  coordinates, the suggested region, nearby goods, a goods' city
- ``service``  the consent check, the built-in region table, the logic; no HTTP
- ``router``   ``/location/...`` (users), ``/admin/goods/{id}/city`` (staff), and the log
  filter that keeps coordinates out of access logs
"""
