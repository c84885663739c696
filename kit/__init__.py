"""The shared kit: every concept the services have in common, once.

- ``settings``   pydantic-settings base with one env prefix per service; secrets never logged
- ``db``         async engine (SQLite or PostgreSQL), session dependency, naming conventions
- ``models``     the kit's own tables (outbox, processed events, subject keys)
- ``migrations`` Alembic environment shared by every service (``python -m kit.migrations``)
- ``errors``     domain errors with a status, RFC 9457 problem+json for every error
- ``events``     the CloudEvents 1.0 envelope; refuses personal data in events
- ``outbox``     transactional outbox writer and the relay that publishes it to Kafka
- ``consumer``   Kafka consumer base: dedup by event id, offsets after handling, dead letters
- ``kafka``      aiokafka client factories and topic helpers
- ``crypto``     per-subject AES-GCM field encryption, blind index, crypto-shredding
- ``catalogue``  loader and validator for ``policy/catalogue.yaml``
- ``masking``    display masking strategies named by the catalogue
- ``observability`` JSON logging with request ids, Prometheus metrics
- ``app``        the FastAPI factory every service and the gateway starts from
"""
