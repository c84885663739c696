"""Security and anti-fraud in orders (policy 2F, OB-2F-1): rules over blind indexes,
flags, and an account's orders under security.anti_fraud."""
