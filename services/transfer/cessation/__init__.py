"""Ceased purposes at transfer (OB-2J-1): ``cross_border.transfer``."""
