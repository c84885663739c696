"""Internal service clients: one OAuth2 client per service that calls another service under
a purpose (``service:<purpose>`` scopes), registered only from the command line, and the
client-credentials grant that gives them service tokens.

- ``service``  registration, revocation and the grant, no HTTP (the grant is served by
  ``tokens.router``'s ``/oauth2/token``; the commands by ``cli``)
"""
