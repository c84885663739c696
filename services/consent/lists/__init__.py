"""The two lists of NDSMR art. 21 (OB-L-1): personal information collected and third
parties it is shared with, generated from the catalogue and the registries, versioned."""
