"""Rights requests at orders (OB-R-1, OB-4-1, OB-4-2): the export and the deletion."""
