"""Sign-in and registration with an SMS code."""
