"""Exceptions users see. Each message names the file, identifier or argument at fault and says how to fix it."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class CortexbenchError(Exception):
    """Base class: the CLI prints these as one clean message instead of a traceback."""


class UnknownIdentifierError(CortexbenchError, KeyError):
    """An identifier that no registered plugin provides."""

    def __init__(self, kind: str, identifier: str, known: Iterable[str], listing: str | None = None):
        """``listing`` says where the full list is (default: ``cortexbench list <kind>s``)."""
        self.kind, self.identifier = kind, identifier
        known = sorted(known)
        close = difflib.get_close_matches(identifier, known, n=5, cutoff=0.5)
        close += [k for k in known if identifier.lower() in k.lower() and k not in close][: 5 - len(close)]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listing = listing or f"Run `cortexbench list {kind}s`"
        self.message = f"No {kind} named {identifier!r} is registered.{hint} {listing} to see all {len(known)} of them."
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class PluginError(CortexbenchError):
    """A plugin that failed to load or registered something invalid."""


class DataError(CortexbenchError):
    """A data or weights file that cannot be resolved, or failed its checksum."""


class ChecksumError(DataError):
    """A file whose bytes differ from its declaration; such a file is never used."""


class InputError(CortexbenchError, ValueError):
    """Invalid input to a model, metric or benchmark (shapes, ids, values)."""


class WeightsNotFoundError(DataError):
    """Pretrained weights that are not available offline."""
