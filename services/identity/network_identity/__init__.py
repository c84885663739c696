"""National network identity authentication (网号/网证, OB-L-11): the result and the
pseudonymous network number only."""
