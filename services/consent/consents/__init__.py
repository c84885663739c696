"""Consents (policy preamble, 2A, 2G, 4): per-purpose consents for additional functions,
separate consents (sensitive data, cross-border transfer per overseas recipient), their
receipts, guardians deciding for minors, and the current state published to a compacted
topic (design principle 4).

- ``models``     ``consent_record`` (append-only receipts), ``consent_state`` (current
  values), ``consent_subject`` (per-subject lock and change counter), ``guardianship``
- ``schemas``    the change request, receipts, state and grantable purposes
- ``service``    the logic, no HTTP
- ``router``     ``/consents`` and ``/wards/{ward_id}/consents``
- ``consumers``  guardianships from identity's events

Readers elsewhere materialise the published state with ``kit.consent_state``.
"""
