"""Hostile input and attack tests (issue 9): tokens, object- and field-level
authorisation, mass assignment, resource limits, and the bounded fuzzing of `make fuzz`."""
