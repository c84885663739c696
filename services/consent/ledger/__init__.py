"""The processing ledger (the user's right to know, PIPL art. 44; policy 3.1 (2)): who
processed which categories of the user's data, when, for what purpose and on which legal
basis, hash-chained per user so that tampering shows.

- ``models``     ``ledger_entry`` (the chain) and ``ledger_actor`` (partner names, staff roles)
- ``schemas``    the user's view: entries, actors, pages, the chain check
- ``service``    recording from events, the chain (``verify_chain``), the user's view, and
                 the look-ups incidents and cessation use to find affected users
- ``consumers``  the ``consent.ledger`` consumer over ``settings.ledger_source_topics``
- ``router``     ``GET /ledger/me``
"""
