"""Mini-program sign-in through the platform, and the phone number by platform code."""
