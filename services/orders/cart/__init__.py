"""The shopping cart (policy 2D, OB-2D-1): items with the price when added, shared-cart
links that show goods only, and price-drop reminders behind their own consent.

- ``schemas``  cart, share and reminder shapes
- ``service``  the logic, no HTTP
- ``router``   ``/cart`` (the owner) and ``/shared-carts/{token}`` (public)
"""
