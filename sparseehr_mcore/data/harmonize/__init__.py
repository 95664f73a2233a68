"""Frozen, fingerprinted code harmonisation (ICD-9 to ICD-10 GEMs, canonical forms)."""
