"""Kriegeskorte 2008 on real data: values re-derived independently, and the known scientific direction."""
import numpy as np
import pytest
import scipy.io
import scipy.stats
from scipy.spatial.distance import squareform

from cortexbench.errors import InputError
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.scorer import score


@pytest.fixture(scope="module")
def scores(shared_data, tmp_path_factory):
    registry = tmp_path_factory.mktemp("registry")
    kw = dict(registry=registry, device="cpu", progress=False)
    trained = score("mobilenet_v2", "kriegeskorte2008.hit-rsa", **kw)
    untrained = score("mobilenet_v2.untrained-seed0", "kriegeskorte2008.hit-rsa", **kw)  # only the weights differ
    return trained, untrained


def _subject_rdms(shared_data):
    mat = scipy.io.loadmat(shared_data / "rsa92_kriegeskorte2008" / "92_brainRDMs.mat")["RDMs"]
    return np.stack([(mat[0, s, 0]["RDM"].astype(float) + mat[0, s, 1]["RDM"].astype(float)) / 2.0 for s in range(4)])


def test_ceiling_matches_independent_computation(scores, shared_data):
    ds = scores[0].assembly
    vec = np.stack([squareform(r, checks=False) for r in _subject_rdms(shared_data)])
    expected = np.mean([scipy.stats.spearmanr(vec[s], np.delete(vec, s, 0).mean(0))[0] for s in range(4)])
    assert float(ds["ceiling"]) == pytest.approx(expected, abs=1e-10)


def test_raw_scores_match_direct_computation(scores, shared_data):
    from cortexbench.plugins.benchmarks.classic_rsa import kriegeskorte2008

    result = scores[0]
    ds = result.assembly
    model = get_plugin_manager().create_model("mobilenet_v2")
    from cortexbench.extraction import extract_all

    layer = "features.14"
    features = extract_all(model, kriegeskorte2008.stimuli(), [layer], pooling="flatten")[layer]
    model_vec = squareform(1 - np.corrcoef(features.astype(np.float64)), checks=False)
    subjects = _subject_rdms(shared_data)
    expected = [scipy.stats.spearmanr(model_vec, squareform(s, checks=False))[0] for s in subjects]
    np.testing.assert_allclose(ds["raw"].sel(layer=layer).values, expected, atol=1e-6)


def test_trained_beats_untrained_and_both_stay_below_ceiling(scores):
    trained, untrained = (r.assembly for r in scores)
    assert float(trained["score"]) > float(untrained["score"]) + 2 * float(untrained["score_error"])
    for ds in (trained, untrained):
        best_raw = float(ds["raw"].mean("subject").max())
        assert best_raw < float(ds["ceiling"])          # below the lower noise ceiling ...
        assert float(ds["score"]) < 1.0                  # ... so the ceiled held-out score is below 1
    assert trained.attrs["model"] == "mobilenet_v2"
    assert set(trained["selected_layer"].values.ravel()) <= set(trained["layer"].values)


def test_assembly_keeps_every_layer_and_subject(scores):
    ds = scores[0].assembly
    assert ds["raw"].dims == ("layer", "subject")
    assert ds.sizes["layer"] == 20 and list(ds["subject"].values) == ["BE", "KO", "SN", "TI"]
    assert np.all(np.diff(ds["depth"].values) > 0)
    assert float(ds["ci_low"]) < float(ds["score"]) + float(ds["score_error"]) * 3


def test_mismatched_stimulus_ids_are_a_clear_error(shared_data):
    from cortexbench.activations import CachedCandidate
    from cortexbench.plugins.benchmarks.classic_rsa import kriegeskorte2008
    from cortexbench.plugins.benchmarks.classic_rsa.rdm_benchmark import BrainRDMs, RDMBenchmark

    brain = kriegeskorte2008.human_it()
    shuffled = BrainRDMs(brain.region, brain.rdms, brain.subjects, brain.stimulus_ids[::-1], brain.source)
    bench = RDMBenchmark("test", "1", kriegeskorte2008.stimuli, lambda: shuffled)
    model = get_plugin_manager().create_model("mobilenet_v2")
    with pytest.raises(InputError, match="stimulus ids differ"):
        bench(CachedCandidate(model))
