"""File input/output: MDF (HDF5) and atomic writes."""

__all__ = []
