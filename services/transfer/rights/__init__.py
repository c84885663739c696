"""Rights requests at transfer (OB-R-1, OB-4-5): the export and the answers."""
