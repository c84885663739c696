"""Rights requests at identity (OB-R-1): the export and the deletion."""
