"""Real-name / real-person verification (policy 2A; OB-2A-1..4), a dispatch-style domain.

- ``id_number``  GB 11643-1999 resident ID numbers: validation, birth date, age, turning 14
- ``authority``  the authoritative identity-authentication provider: the adapter protocol,
  a deterministic sandbox and the HTTP adapter
- ``rules``      when verification is required (OB-2A-1): the explicit action table
- ``schemas``    request and response bodies (never a table object)
- ``service``    verify, read back masked, link a guardian to a minor (no HTTP)
- ``router``     the thin HTTP layer: ``/verifications`` and ``/guardianships``
"""
