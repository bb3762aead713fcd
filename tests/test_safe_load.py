"""cortexbench.safe_load: numpy pickles load, pickles that would run code are refused with the file named."""
import os
import pickle

import numpy as np
import pytest

from cortexbench import safe_load
from cortexbench.errors import DataError, InputError


class _Evil:
    """Unpickling this would run ``os.system``."""

    def __reduce__(self):
        return (os.system, ("echo pwned > should_not_exist",))


def test_numpy_pickles_and_object_npy_files_load_like_numpy(tmp_path):
    betas = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps((betas, ["a", "b"], {1: np.int64(3)}), protocol=protocol))
        values, names, mapping = safe_load.load_pickle(path)
        np.testing.assert_array_equal(values, betas)
        assert names == ["a", "b"] and mapping == {1: 3}
    mapping = {0: "Unknown", 1: "V1v", 2: "V1d"}
    np.save(tmp_path / "mapping.npy", np.array(mapping, dtype=object), allow_pickle=True)
    assert safe_load.load_npy(tmp_path / "mapping.npy") == np.load(tmp_path / "mapping.npy", allow_pickle=True).item()
    np.save(tmp_path / "plain.npy", betas)
    np.testing.assert_array_equal(safe_load.load_npy(tmp_path / "plain.npy"), betas)
    objects = np.array([["x"], ["yz"]], dtype=object)
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    np.testing.assert_array_equal(safe_load.load_npy(tmp_path / "objects.npy"), objects)


def test_code_in_a_pickle_is_refused_with_the_file_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil_pkl = tmp_path / "evil.pkl"
    evil_pkl.write_bytes(pickle.dumps({"betas": _Evil()}))
    with pytest.raises(DataError, match=r"evil\.pkl: the pickle refers to (posix|os|nt)\.system"):
        safe_load.load_pickle(evil_pkl)
    evil_npy = tmp_path / "mapping_evil.npy"
    np.save(evil_npy, np.array(_Evil(), dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"mapping_evil\.npy: the pickle refers to (posix|os|nt)\.system"):
        safe_load.load_npy(evil_npy)
    assert not (tmp_path / "should_not_exist").exists()


def test_truncated_and_missing_files_are_clear_errors(tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, np.array({1: "V1"}, dtype=object), allow_pickle=True)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"cut\.npy: not a readable pickle.*re-download"):
        safe_load.load_npy(path)
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match=r"garbage\.npy: not a readable \.npy file"):
        safe_load.load_npy(tmp_path / "garbage.npy")
    with pytest.raises(InputError, match="does not exist"):
        safe_load.load_pickle(tmp_path / "absent.pkl")
