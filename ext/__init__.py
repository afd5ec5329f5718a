"""Compiled routing helpers (Cython). Installed as the package `basis_ext`."""
