"""Model recovery: statistics by hand, planted recovery of distinct generators, and a small real grid via the scorer."""
import numpy as np
import pytest
import torch

from cortexbench.plugins.benchmarks.things_oddoneout import metrics
from cortexbench.plugins.benchmarks.things_oddoneout.fitting import SolverSettings, as_features
from cortexbench.plugins.benchmarks.things_oddoneout.human import HumanData, load_human
from cortexbench.plugins.benchmarks.things_oddoneout.noise_ceiling import loo_ceiling
from cortexbench.plugins.benchmarks.things_oddoneout.objective import Transform
from cortexbench.plugins.benchmarks.things_oddoneout.recovery import (CANDIDATE_LAMBDAS, GENERATOR_LAMBDAS,
                                                                      PAPER_N_TRAIN, Generator, run_recovery, simulate)
from cortexbench.plugins.benchmarks.things_oddoneout.recovery_benchmark import ThingsRecoveryBenchmark
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import count_choices, triplet_keys
from cortexbench.registry import variant_of
from cortexbench.scorer import score


def test_recovery_statistics_by_hand():
    # generators = candidates 0 and 2 of 3; 4 seeds; accuracies (generator, candidate, seed)
    acc = np.array([[[0.9, 0.5, 0.5, 0.7], [0.1, 0.6, 0.5, 0.2], [0.2, 0.1, 0.9, 0.7]],
                    [[0.3, 0.3, 0.3, 0.8], [0.2, 0.3, 0.1, 0.1], [0.6, 0.4, 0.2, 0.8]]])[:, :, None, :, None]
    winner, tied = metrics.winners(acc, seed=0)
    assert tied[0, 0, :, 0].tolist() == [False, False, False, True]
    assert winner[0, 0, :3, 0].tolist() == [0, 1, 2] and winner[0, 0, 3, 0] in (0, 2)
    assert winner[1, 0, :3, 0].tolist() == [2, 2, 0] and winner[1, 0, 3, 0] in (0, 2)
    columns = np.array([0, 2])
    share, low, high, hits = metrics.recovery_accuracy(winner, columns, seed_axis=2)
    assert hits[0, 0, 0] in (1, 2) and hits[1, 0, 0] in (2, 3)
    rr = metrics.reciprocal_ranks(acc, columns)
    # generator 0 is candidate 0: ranks 1, 2, 2.5 (tied with candidate 1), 1.5 (tied with candidate 2)
    np.testing.assert_allclose(rr[0, 0, :, 0], [1, 1 / 2, 1 / 2.5, 1 / 1.5])
    np.testing.assert_allclose(rr[1, 0, :, 0], [1, 1, 1 / 2, 1 / 1.5])
    counts = metrics.confusion(winner, 3, seed_axis=2)
    assert counts.shape == (2, 3, 1, 1) and (counts.sum(axis=1) == 4).all()


@pytest.fixture(scope="module")
def planted_world():
    """Three 'models' with independent random features over 150 concepts; people answer like model a."""
    rng = np.random.default_rng(0)
    n = 150
    features = {name: rng.normal(size=(n, 4)) * 1.5 for name in ("a", "b", "c")}
    triplets = np.stack([np.sort(rng.choice(n, 3, replace=False)) for _ in range(300)])
    generator = Generator("a", Transform.make("zero_shot", 4), torch.zeros(0, dtype=torch.float64), 1.0, np.nan,
                          np.nan, np.nan)
    settings = SolverSettings(dtype="float64")
    x = as_features(features["a"], settings)
    repeated = np.repeat(triplets, 12, axis=0)
    choice = simulate(generator, x, repeated, (1,), settings)
    counts = count_choices(repeated, choice)
    human = HumanData(counts, counts, loo_ceiling(counts.counts), "planted", np.unique(triplet_keys(triplets, n)),
                      "planted")
    return features, human, settings


def test_simulated_choices_follow_the_calibrated_probabilities(planted_world):
    features, _, settings = planted_world
    x = as_features(features["b"], settings)
    generator = Generator("b", Transform.make("zero_shot", 4), torch.zeros(0, dtype=torch.float64), 2.5, np.nan,
                          np.nan, np.nan)
    triplet = np.array([[3, 17, 90]])
    choices = simulate(generator, x, np.repeat(triplet, 40000, axis=0), (5,), settings)
    f = features["b"]
    s = lambda a, b: f[a] @ f[b]
    logits = np.array([s(17, 90), s(3, 90), s(3, 17)]) / 2.5
    p = np.exp(logits - logits.max())
    p /= p.sum()
    np.testing.assert_allclose(np.bincount(choices, minlength=3) / 40000, p, atol=0.01)


def test_distinct_generators_are_recovered(planted_world):
    features, human, settings = planted_world
    result = run_recovery(features, ["a", "b", "c"], human, ["zero_shot", "diagonal"], [300], [0, 1], settings,
                          lambdas=[1e-3, 1.0], generator_lambdas=[1e-3, 1.0], generator_folds=3)
    winner, _ = metrics.winners(result.test_accuracy)
    assert (winner[:, 0, :, :] == np.arange(3)[:, None, None]).all()       # every generator wins on its own data
    assert np.isfinite(result.test_accuracy).all() and (result.test_accuracy <= 1).all()
    assert np.isnan(result.chosen_lambda[..., 0]).all() and np.isin(result.chosen_lambda[..., 1], [1e-3, 1.0]).all()
    # each generator's temperature makes its expected accuracy on the human triplets equal the ceiling
    for g, name in enumerate(result.generators):
        f = features[name]
        i, j, k = human.calibration.triplets.T
        dot = lambda u, v: (f[u] * f[v]).sum(1)
        z = np.stack([dot(j, k), dot(i, k), dot(i, j)], 1) / result.generator_temperature[g, 0]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w = human.calibration.counts.sum(1)
        assert np.sum(p.max(1) * w) / w.sum() == pytest.approx(human.ceiling, abs=1e-8)


def test_paper_grid_is_the_default():
    bench = ThingsRecoveryBenchmark(identifier="things.recovery", version="1")
    assert bench.n_train == list(PAPER_N_TRAIN) and len(PAPER_N_TRAIN) == 18
    assert PAPER_N_TRAIN[:3] == (50, 100, 200) and PAPER_N_TRAIN[-2:] == (3_276_800, 4_200_000)
    assert bench.seeds == list(range(30)) and bench.transforms == ["zero_shot", "diagonal", "rectangular", "full"]
    assert bench.lambdas == [10.0 ** e for e in range(-6, 5)] == list(CANDIDATE_LAMBDAS)
    assert list(GENERATOR_LAMBDAS) == [10.0 ** e for e in range(-6, 3)]


def test_small_real_grid_through_the_scorer(registry, tmp_path):
    options = {"pool": ["things/vice-42d"], "n_train": [64], "seeds": 3, "lambdas": [1e-2, 1.0],
               "generator_lambdas": [1e-2, 1.0], "transforms": ["zero_shot", "diagonal"],
               "headline_transform": "diagonal", "plot_dir": str(tmp_path / "plots")}
    result = score("things/spose-14d", "things.recovery", registry=registry, device="cpu", progress=False,
                   benchmark_options=options)
    ds = result.assembly
    assert ds["raw"].dims == ("generator", "candidate", "n_train", "seed", "transform")
    assert list(ds["candidate"].values) == ["things/spose-14d", "things/vice-42d"]
    raw = ds["raw"].sel(n_train=64, transform="diagonal").values                 # (generator, candidate, seed)
    best = raw.max(axis=1, keepdims=True)
    clear = (raw == best).sum(axis=1) == 1
    own = raw[0, 0] == best[0, 0]
    winners = ds["winner"].sel(generator="things/spose-14d", n_train=64, transform="diagonal").values
    expected = own[clear[0]].sum() + (winners[~clear[0]] == "things/spose-14d").sum()   # ties: the stored draw
    assert float(ds["score"]) == pytest.approx(expected / 3)
    assert (ds["confusion"].sum("candidate") == 3).all()
    human = load_human(1854)
    assert float(ds.attrs["noise_ceiling"]) == pytest.approx(human.ceiling)
    assert float(ds["generator_human_accuracy"].sel(generator="things/vice-42d", transform="zero_shot")) == \
        pytest.approx(12713 / 20000)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy_vs_identifiability.png", "confusion.png", "recovery_vs_n.png"]
    stored = registry.get("things/spose-14d", "things.recovery", variant=variant_of(None, options)).load()
    assert stored["winner"].shape == ds["winner"].shape and float(stored["score"]) == float(ds["score"])
