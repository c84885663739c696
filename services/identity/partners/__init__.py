"""Partners (policy section 3): registered clients with an agreement, an assessment of
their purpose and security capability, and the purposes they may serve; the OAuth2
client-credentials grant that gives them scoped tokens.

- ``schemas``  registration, assessment and view shapes
- ``service``  the logic, no HTTP
- ``router``   ``/partners`` (admin) and ``/oauth2/token`` (partners)
"""
