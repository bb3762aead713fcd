"""Shared pytest set-up for tests/ and the plugin folders' own tests.

* The real data live in ``../shared/data`` beside the project root (or wherever ``$CORTEXBENCH_MIRRORS`` points).
  Tests use them and do not skip; only on a machine without the folder do tests that need it skip, and under
  ``CI=true`` a missing folder is a failure.
* Every test session gets its own cache root, registry and activation cache, and downloads are off
  (tests that exercise downloads serve files from a local HTTP server and switch it back on).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SHARED_DATA = (ROOT.parent / "shared" / "data").resolve()


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("CORTEXBENCH_MIRRORS") and SHARED_DATA.is_dir():
        os.environ["CORTEXBENCH_MIRRORS"] = str(SHARED_DATA)
    if not os.environ.get("CORTEXBENCH_TEST_KEEP_HOME"):
        import tempfile

        os.environ["CORTEXBENCH_HOME"] = tempfile.mkdtemp(prefix="cortexbench-tests-")
    os.environ.pop("CORTEXBENCH_REGISTRY", None)
    os.environ["CORTEXBENCH_OFFLINE"] = "1"
    os.environ.setdefault("CORTEXBENCH_PROGRESS", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _mirror() -> Path | None:
    for entry in os.environ.get("CORTEXBENCH_MIRRORS", "").split(os.pathsep):
        if entry and Path(entry).is_dir():
            return Path(entry)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data mirror folder (``../shared/data``)."""
    mirror = _mirror()
    if mirror is None:
        message = (f"the shared data folder {SHARED_DATA} is missing (set CORTEXBENCH_MIRRORS to its location)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    return mirror


@pytest.fixture()
def registry(tmp_path):
    from cortexbench.registry import Registry

    return Registry(tmp_path / "registry")
