"""Security incidents, notices to users and cessation (policy 2H, 2J and 4; OB-4-8,
OB-2J-1, OB-2H-1). Affected users are found in the processing ledger.

- ``models``        ``security_incident``, ``incident_announcement``, ``cessation``,
                    ``subject_notice``
- ``schemas``       incident, report, notice, announcement and cessation shapes
- ``notices``       notice rows + ``com.signature.consent.notification.v1`` events; the
                    user's notices with their text
- ``service``       incidents: affected users, notices or announcement, regulator report
- ``cessation``     ceased purposes and changes of controller
- ``dependencies``  consent settings and the notifier for the routes
- ``router``        ``/incidents``, ``/announcements``, ``/notices/me``, ``/cessations``
- ``consumers``     none
"""
