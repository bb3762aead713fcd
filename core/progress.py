"""One switch for every progress bar (``--quiet`` turns them all off, benchmarks' bars included)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_enabled = os.environ.get("CORTEXBENCH_PROGRESS", "1").strip().lower() not in {"0", "false", "no", "off"}


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def progress_enabled(value: bool) -> Iterator[None]:
    global _enabled
    previous, _enabled = _enabled, bool(value)
    try:
        yield
    finally:
        _enabled = previous


def bar(iterable: Any = None, **kwargs: Any):
    """``tqdm`` that respects the switch; bars are cleared when done (``leave=False``) unless asked otherwise."""
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs["disable"] = kwargs.get("disable", False) or not _enabled
    return tqdm(iterable, **kwargs)
