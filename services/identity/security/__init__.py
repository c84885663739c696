"""Security and anti-fraud in identity (policy 2F, OB-2F-1): flags and the account view."""
