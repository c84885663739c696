"""Cross-border volume tiers (OB-L-7): persons counted per calendar year, the legal basis
the volume needs, counters and alerts for administrators."""
