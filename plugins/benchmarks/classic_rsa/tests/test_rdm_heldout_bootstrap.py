"""The held-out RSA procedure and its whole-procedure stimulus bootstrap, on planted data.

References are computed independently here: scipy Spearman r on explicitly expanded resamples, per-label counts,
a variance decomposition with known components, and the spread of the headline over independently regenerated
datasets (what a bootstrap SD has to estimate).
"""
import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import squareform

from cortexbench.interfaces import make_layers
from cortexbench.plugins.benchmarks.classic_rsa import held_out as H
from cortexbench.plugins.benchmarks.classic_rsa.rdm_benchmark import BrainRDMs, RDMBenchmark
from cortexbench.plugins.metrics.rsa import functional as F
from cortexbench.progress import progress_enabled
from cortexbench.stimuli import StimulusSet

N, CATEGORIES, LATENT, VOXELS, SUBJECTS = 64, 4, 6, 40, 5
POPULATION = np.random.default_rng(123)
CATEGORY_MEANS = POPULATION.normal(size=(CATEGORIES, LATENT))
TO_VOXELS = POPULATION.normal(size=(LATENT, VOXELS))
TO_UNITS = [POPULATION.normal(size=(LATENT, 30)) for _ in range(4)]
LAYER_NOISE = (3.0, 1.2, 1.25, 4.0)  # layers 1 and 2 about equally good: the layer choice is unstable


class PlantedCandidate:
    """A model whose layer features are given arrays (what the benchmark sees of a model)."""

    def __init__(self, features):
        self.identifier, self.device, self.features = "planted", "cpu", features
        self.layers = make_layers([f"l{k}" for k in range(len(features))], "NC")

    def activations(self, stimuli, layers, pooling="flatten"):
        return {name: _Values(self.features[int(name[1:])]) for name in layers}


class _Values:
    def __init__(self, values):
        self.values = values


def planted_dataset(seed: int):
    """Stimuli drawn from 4 categories; subjects and layers are noisy linear read-outs of the same latents."""
    rng = np.random.default_rng(seed)
    category = rng.integers(0, CATEGORIES, N)
    latent = CATEGORY_MEANS[category] + rng.normal(size=(N, LATENT))
    rdms = np.stack([1 - np.corrcoef(latent @ TO_VOXELS + rng.normal(size=(N, VOXELS)) * 6.0)
                     for _ in range(SUBJECTS)])
    features = [latent @ w + rng.normal(size=(N, 30)) * noise for w, noise in zip(TO_UNITS, LAYER_NOISE)]
    ids = tuple(f"s{i}" for i in range(N))
    stimuli = StimulusSet.from_arrays("planted", [np.zeros((2, 2, 3), np.uint8)] * N, ids,
                                      metadata={"category": [str(c) for c in category]})
    brain = BrainRDMs("IT", rdms, tuple(f"sub{s}" for s in range(SUBJECTS)), ids, "planted")
    return stimuli, brain, PlantedCandidate(features)


def run(seed: int, **options):
    stimuli, brain, candidate = planted_dataset(seed)
    with progress_enabled(False):
        return RDMBenchmark("planted", "1", lambda: stimuli, lambda: brain, **options)(candidate), brain, candidate


def test_half_statistics_equal_scipy_on_explicitly_expanded_resamples():
    rng = np.random.default_rng(0)
    n, layers, regions, subjects = 14, 3, 2, 3
    model = F.rdm(torch.tensor(rng.normal(size=(layers, n, 5))))
    brain = F.rdm(torch.tensor(rng.normal(size=(regions, subjects, n, 6)))).clone()
    brain[0, 0] = torch.tensor(squareform(np.round(squareform(brain[0, 0].numpy(), checks=False), 1)))  # ties
    stack = H.RDMStack.build(model, brain, loso=True)
    counts = np.stack([rng.multinomial(n, np.ones(n) / n) for _ in range(3)])
    assignment = H.stratified_halves(np.zeros(n, dtype=int), counts > 0, rng)
    layer_r, ceiling = (x.numpy() for x in H.half_statistics(stack, assignment, counts))
    for k in range(len(counts) * 2):
        members = np.flatnonzero(assignment[k // 2] == k % 2)
        draws = np.repeat(members, counts[k // 2, members])          # the half's stimuli with their copies
        a, b = np.triu_indices(len(draws), 1)
        keep = draws[a] != draws[b]                                  # a stimulus paired with its own copy: dropped
        a, b = draws[a[keep]], draws[b[keep]]
        vec = lambda rdm: np.asarray(rdm)[a, b]                      # noqa: E731
        for g in range(regions):
            subj = [vec(brain[g, s]) for s in range(subjects)]
            expected = [np.mean([scipy.stats.spearmanr(vec(model[l]), v)[0] for v in subj]) for l in range(layers)]
            np.testing.assert_allclose(layer_r[k, g], expected, atol=1e-10)
            others = [np.mean([subj[o] for o in range(subjects) if o != s], 0) for s in range(subjects)]
            loso = np.mean([scipy.stats.spearmanr(subj[s], others[s])[0] for s in range(subjects)])
            assert ceiling[k, g] == pytest.approx(loso, abs=1e-10)


def test_stratified_halves_split_every_label_in_two():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [7, 6, 9])
    members = rng.random((200, len(labels))) < 0.7
    halves = H.stratified_halves(labels, members, rng)
    assert ((halves == -1) == ~members).all()
    for label in range(3):
        size = (members & (labels == label)).sum(1)
        first = ((halves == 0) & (labels == label)).sum(1)
        assert ((first == size // 2) | (first == size - size // 2)).all()
    # every member lands in each half sometimes: the halves are random, not a fixed cut
    assert ((halves == 0) & members).any(0).all() and ((halves == 1) & members).any(0).all()


def test_split_variance_correction_recovers_the_variance_of_a_longer_average():
    rng = np.random.default_rng(2)
    between, within, n_splits = 0.3, 1.0, 10
    per_split = rng.normal(0, between, (20000, 1)) + rng.normal(0, within, (20000, 2))
    adjusted, factor = H.split_variance_correction(per_split, n_splits)
    expected = between ** 2 + within ** 2 / n_splits        # the variance of a mean over n_splits splits
    assert np.var(adjusted, ddof=1) == pytest.approx(expected, rel=0.05)
    assert np.var(per_split.mean(1), ddof=1) == pytest.approx(between ** 2 + within ** 2 / 2, rel=0.05)
    assert adjusted.mean() == pytest.approx(per_split.mean()) and 0 < factor < 1


def test_headline_is_the_ratio_of_held_out_means_recomputed_with_scipy():
    ds, brain, candidate = run(0, n_splits=3, n_bootstrap=20)
    vectors = [squareform(r, checks=False) for r in brain.rdms]
    raws, ceilings = [], []
    for split in range(3):
        halves = ds["halves"].values[split]
        for d, (train, test) in enumerate(((0, 1), (1, 0))):
            layer = str(ds["selected_layer"].values[split, d])
            idx = np.flatnonzero(halves == test)
            a, b = np.triu_indices(len(idx), 1)
            sub = lambda v: squareform(v)[idx[a], idx[b]]          # noqa: E731
            model = sub(squareform(1 - np.corrcoef(candidate.features[int(layer[1:])]), checks=False))
            subj = [sub(v) for v in vectors]
            raws.append(np.mean([scipy.stats.spearmanr(model, s)[0] for s in subj]))
            ceilings.append(np.mean([scipy.stats.spearmanr(subj[s], np.mean(np.delete(subj, s, 0), 0))[0]
                                     for s in range(SUBJECTS)]))
            assert ds["fold_raw"].values[split, d] == pytest.approx(raws[-1], abs=1e-10)
    assert float(ds["score"]) == pytest.approx(np.mean(raws) / np.mean(ceilings), abs=1e-10)
    assert ds["raw"].dims == ("layer", "subject")


def test_bootstrap_sd_matches_the_spread_over_regenerated_datasets():
    """The error must describe the headline: its SD over 40 independently generated datasets.

    The old error (full-set bootstrap of the most often chosen layer) ignores the layer choice and the halving; the
    whole-procedure bootstrap must come out larger than it while matching the headline's real spread.
    """
    headlines, errors, modal_layer_errors = [], [], []
    for seed in range(40):
        ds, brain, candidate = run(seed, n_bootstrap=200)
        headlines.append(float(ds["score"]))
        errors.append(float(ds["score_error"]))
        chosen = list(ds["selected_layer"].values.ravel())
        modal = max(set(chosen), key=chosen.count)
        model_rdm = F.rdm(torch.tensor(candidate.features[int(modal[1:])], dtype=torch.float64))
        old = F.bootstrap_rsa(model_rdm, torch.tensor(brain.rdms), F.bootstrap_samples(N, 200, 0), "spearman")
        modal_layer_errors.append(float(old.std()))
    assert len({str(v) for v in ds["selected_layer"].values.ravel()}) > 1          # the choice really varies
    empirical = np.std(headlines, ddof=1)
    assert 1 / 1.5 < np.mean(errors) / empirical < 1.5
    assert np.mean(errors) > np.mean(modal_layer_errors)
