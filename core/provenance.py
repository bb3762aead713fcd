"""What a stored score records about how it was made, so that it can be trusted and reproduced."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import __version__

_PACKAGES = ("numpy", "scipy", "xarray", "torch", "torchvision", "timm", "transformers", "h5netcdf", "pluggy")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: Path | None = None) -> str | None:
    """The checkout's commit (with ``-dirty`` when modified) if cortexbench runs from a git work tree."""
    path = path or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def collect(**fields: Any) -> dict[str, Any]:
    """Environment facts plus the caller's fields (plugin versions, checksums, device, seeds, timing)."""
    return {
        "cortexbench_version": __version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": package_versions(),
        "command": " ".join(sys.argv),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **fields,
    }
