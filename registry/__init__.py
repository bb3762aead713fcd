"""The local score registry: netCDF4 score assemblies plus an SQLite index of their provenance."""
from .store import Registry, StoredScore, load_assembly

__all__ = ["Registry", "StoredScore", "load_assembly"]
