"""Overseas recipients (policy 4, storage location; policy 3): who receives data abroad,
for what, which data categories, how users exercise their rights with them, the
data-processing agreement, their legal basis with its review date, and their periodic
assessments (OB-3-3, OB-3-4, OB-4-5, OB-4-6).

- ``schemas``  registration, legal basis, assessment, view and disclosure shapes
- ``service``  the logic, no HTTP
- ``router``   ``/recipients`` (scope ``admin:transfers``; the disclosure: ``consent:read``)
"""
