"""Rights requests (OB-R-1): users see, copy, correct and delete their personal information
and withdraw consent; every service that holds their data answers, within a deadline.

- ``models``     ``rights_request`` and one ``rights_answer`` per participant service
- ``schemas``    request, view and admin shapes, the completion-event contract, the export
- ``service``    filing, answers, completion, deadlines and overdue reports, the consent
                 service's own answer; no HTTP
- ``export``     gathering each service's data over HTTP for an access export
- ``consumers``  ``consent.rights``: records the services' completion events
- ``router``     ``/rights-requests`` (users, and the privacy officer with ``admin:rights``)
"""
