"""Reading pickled data files without running code from them.

Some published datasets ship pickles (BOLD Moments' ``.pkl`` betas) or ``.npy`` files holding a pickled object
(Algonauts-2023's ``mapping_*.npy`` dicts). ``pickle.load`` would execute whatever a tampered file asks for, so these
readers go through an unpickler that rebuilds only numpy arrays, dtypes, numpy scalars and builtin containers; any
other global in the stream is refused with a :class:`~cortexbench.errors.DataError` naming the file.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from .errors import DataError, InputError

#: The only globals a pickle of numpy arrays needs (numpy 1.x and 2.x module names).
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocols < 3 store the array bytes as latin-1 text re-encoded by this
})
ALLOWED_BUILTINS = frozenset({"list", "tuple", "dict", "set", "frozenset", "bytearray", "bytes", "str", "int",
                              "float", "complex", "bool"})


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and builtin containers, and nothing else."""

    def __init__(self, handle: io.BufferedIOBase, path: str | Path):
        super().__init__(handle)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS or (module == "builtins" and name in ALLOWED_BUILTINS):
            return super().find_class(module, name)
        raise DataError(f"{self.path}: the pickle refers to {module}.{name}, which a data file never needs; refusing "
                        "to load it (only numpy arrays and builtin containers are allowed). Re-download the file "
                        "from its original source and check its checksum")


def _unpickle(handle: io.BufferedIOBase, path: Path) -> Any:
    try:
        return NumpyOnlyUnpickler(handle, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a readable pickle ({err}); the file may be truncated or corrupt: re-download "
                        "it and check its checksum") from None


def load_pickle(path: str | Path) -> Any:
    """Unpickle numpy arrays, strings and containers only."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    with open(path, "rb") as handle:
        return _unpickle(handle, path)


def load_npy(path: str | Path) -> Any:
    """``numpy.load`` of one ``.npy`` file; object arrays are unpickled with :class:`NumpyOnlyUnpickler`.

    Returns the array; a 0-d object array (as ``np.save(path, some_dict)`` writes) is returned as its item.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            _, _, dtype = header(handle)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: not a readable .npy file ({err}); re-download it and check its "
                            "checksum") from None
        if not dtype.hasobject:
            handle.seek(0)
            try:
                return np.load(handle, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise DataError(f"{path}: not a readable .npy file ({err}); the file may be truncated: re-download "
                                "it and check its checksum") from None
        array = _unpickle(handle, path)
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: an object .npy file must hold a pickled array, got {type(array).__name__}")
    return array.item() if array.ndim == 0 else array
