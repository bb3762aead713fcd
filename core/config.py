"""Where cortexbench keeps things. Every location has an environment variable so that CI and users can move it."""
from __future__ import annotations

import os
from pathlib import Path

#: ``os.pathsep``-separated folders that mirror dataset files (CI points it at ``../shared/data``).
MIRRORS_ENV = "CORTEXBENCH_MIRRORS"
#: Root of downloaded data and the activation cache (default: the user's cache directory).
HOME_ENV = "CORTEXBENCH_HOME"
#: The score registry (default: ``$CORTEXBENCH_HOME/registry``).
REGISTRY_ENV = "CORTEXBENCH_REGISTRY"
#: Set to 1 to forbid downloads (resolution then uses mirrors and the cache only).
OFFLINE_ENV = "CORTEXBENCH_OFFLINE"
#: Folder of local weight files (``<model id with / replaced by __>.<ext>``) for pretrained models.
WEIGHTS_ENV = "CORTEXBENCH_WEIGHTS"


def home() -> Path:
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cortexbench", appauthor=False))


def data_cache_dir() -> Path:
    return home() / "data"


def activations_dir() -> Path:
    return home() / "activations"


def registry_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    value = os.environ.get(REGISTRY_ENV)
    return Path(value).expanduser() if value else home() / "registry"


def mirror_dirs() -> list[Path]:
    value = os.environ.get(MIRRORS_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def weights_dir() -> Path | None:
    value = os.environ.get(WEIGHTS_ENV)
    return Path(value).expanduser() if value else None
