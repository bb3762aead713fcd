"""The local score registry: netCDF4 score assemblies plus an SQLite index of their provenance."""
from .store import DEFAULT_VARIANT, Registry, StoredScore, load_assembly, variant_of

__all__ = ["DEFAULT_VARIANT", "Registry", "StoredScore", "load_assembly", "variant_of"]
