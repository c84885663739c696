"""The API gateway: authorisation, purpose binding, consent enforcement and minimum-necessary field
filtering.

- ``config``  settings (environment prefix ``GATEWAY_``)
- ``models``  tables, in this app's own registry and database
- ``main``    the FastAPI app factory (``uvicorn --factory gateway.main:create_app``)
- ``handler`` the one handler: route, token, purpose, consent, filter, access event
- ``proxy``   forwarding to the upstreams (httpx over aiohttp's pool)
- ``access_events``  group commit of the access events of concurrent reads
- ``migrations/versions``  Alembic revisions (branch ``gateway``)
"""
