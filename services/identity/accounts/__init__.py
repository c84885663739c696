"""Accounts: registration, login with throttling, the owner's view, roles, staff.

- ``schemas``  request and response shapes
- ``service``  the logic, no HTTP
- ``router``   ``/accounts``, ``/login``, ``/staff``
"""
