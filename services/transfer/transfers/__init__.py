"""Transfers abroad (policy 4, storage location): only with separate consent and a valid
legal basis, only the necessary fields, de-identified and encrypted for the recipient,
every one recorded and shown to the user (OB-4-3, OB-4-4, OB-4-5, OB-4-6).

- ``schemas``    request, record and user-view shapes
- ``service``    deciding, packaging and delivering; the records; no HTTP
- ``package``    the recipient's key, the waybill pseudonym, hybrid encryption
- ``fetcher``    the order fields from orders, under ``cross_border.transfer`` (interface + httpx)
- ``delivery``   HTTPS delivery attempts (interface + httpx)
- ``worker``     the periodic task that resumes and delivers
- ``consumers``  ``transfer.orders``: order events that start transfers
- ``router``     ``/transfers`` (admin) and ``/transfers/me`` (the user)
"""
