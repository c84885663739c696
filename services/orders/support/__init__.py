"""Customer service and dispute resolution (policy 2E, OB-2E-1, OB-2E-2)."""
