"""Goods search and the user's search history (policy 2B, OB-2B-1)."""
