"""Policy versions (policy section 5): publication, the public page and archive, diffs,
users' agreements with receipts, and the renewed consent a major change needs.

- ``models``     ``policy_version`` and ``policy_agreement``, both append-only
- ``schemas``    publishing rules (major kinds, rights reductions), views, receipts, state
- ``service``    the logic, no HTTP; :func:`service.renewal_required` and
  :func:`service.agreement_state` for the consents domain, the consent-state publisher
  and the gateway
- ``page``       the HTML page, Markdown rendered minimally and escaped
- ``router``     ``/policy``, ``/policy.html``, ``/policy/versions``, ``/policy/diff``,
  ``/policy/agreements``
- ``consumers``  none: this domain consumes no events
"""
