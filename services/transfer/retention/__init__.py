"""Retention of transfer records (``transfer_record`` in the catalogue)."""
