"""Ceased purposes at orders (OB-2J-1): ``location`` and ``marketing.price_drop``."""
