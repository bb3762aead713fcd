"""The used-concept, chunked, hand-differentiated objective against the dense autograd formulation it replaced.

The reference (``sequential.DenseObjective``) is the previous implementation's (and the reference code's) way:
``Z = X W^T`` for every concept, the full Gram matrix ``Z Z^T``, entries gathered per triplet, and torch autograd
for the gradient.
"""
import numpy as np
import pytest
import torch

from cortexbench.plugins.benchmarks.things_oddoneout import fitting, similarity
from cortexbench.plugins.benchmarks.things_oddoneout.lbfgs import minimize
from cortexbench.plugins.benchmarks.things_oddoneout.objective import (TRANSFORMS, Transform, TripletBatch,
                                                                       TripletObjective, matmul_precision)
from cortexbench.plugins.benchmarks.things_oddoneout.sequential import DenseObjective, fit_one
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import TripletCounts, sample_unique_triplets

# (concepts, triplets per set): few triplets on many concepts (``rows`` is cheaper), many on few (``gram``)
REGIMES = {"few": (40, 6), "many": (14, 150)}
P = 5


def _sets(regime: str, seed: int, n_sets: int = 2):
    """Random judgments (several per triplet) on sets of different lengths that use different concepts."""
    n_concepts, n = REGIMES[regime]
    rng = np.random.default_rng(seed)
    features = torch.tensor(rng.normal(size=(n_concepts, P)))
    sets = []
    for d in range(n_sets):
        pool = rng.choice(n_concepts, n_concepts - 2 * d, replace=False)      # set d leaves some concepts out
        triplets = sample_unique_triplets(np.sort(pool), n - 3 * d, rng, None, n_concepts)
        sets.append(TripletCounts(triplets, rng.integers(0, 4, size=(len(triplets), 3)).astype(float) + 0.5))
    return features, sets


def _transforms():
    return [(kind, k) for kind in TRANSFORMS for k in ((2, P) if kind == "rectangular" else (P,))]


def _params(transform: Transform, batch: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return transform.initial(batch, torch.float64, "cpu") + 0.4 * torch.tensor(
        rng.normal(size=(batch, transform.n_params)))


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("kind, k", _transforms())
def test_loss_and_gradient_equal_the_dense_autograd_formulation(kind, k, regime):
    features, sets = _sets(regime, seed=len(kind) + k)
    transform = Transform.make(kind, P, rectangular_k=k)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    data_ids = torch.tensor([0, 1, 1, 0])
    lambdas = torch.tensor([0.0, 0.3, 2.0, 1e-3], dtype=torch.float64)
    params = _params(transform, 4, seed=k)
    x = params.clone().requires_grad_(True)
    expected = DenseObjective(features, transform).loss(x, data, data_ids, lambdas)
    expected_grad = torch.autograd.grad(expected.sum(), x)[0] if transform.n_params else torch.zeros(4, 0, dtype=torch.float64)
    for mode in ("auto", "rows", "gram"):
        for workspace in (1, 2 ** 24):                                   # one triplet per chunk, or all at once
            objective = TripletObjective(features, transform, mode=mode, workspace=workspace)
            value, grad = objective.value_and_grad(params, data, data_ids, lambdas)
            torch.testing.assert_close(value, expected.detach(), rtol=1e-12, atol=1e-13)
            torch.testing.assert_close(grad, expected_grad, rtol=1e-11, atol=1e-13)
    # the regime is the one claimed: auto takes the cheaper way by the FLOP model
    assert TripletObjective(features, transform).path(data.n_used, data.n_triplets) == (
        "rows" if regime == "few" else "gram")


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_logits_and_accuracy_equal_the_dense_formulation(regime):
    features, sets = _sets(regime, seed=7)
    transform = Transform.make("full", P)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    data_ids = torch.tensor([1, 0])
    params = _params(transform, 2, seed=3)
    dense = DenseObjective(features, transform).similarities(params, data.index[data_ids])
    temperature = torch.tensor([0.5, 2.0], dtype=torch.float64)
    for mode in ("rows", "gram"):
        objective = TripletObjective(features, transform, mode=mode, workspace=50)
        logits = objective.logits(params, data.index[data_ids], temperature)
        torch.testing.assert_close(logits, dense / temperature[:, None, None], rtol=1e-12, atol=1e-12)
        counts = data.counts[data_ids].numpy()
        predicted = dense.argmax(dim=-1).numpy()                          # continuous features: no ties
        expected = [counts[b][np.arange(counts.shape[1]), predicted[b]].sum() for b in range(2)]
        np.testing.assert_allclose(objective.correct(params, data, data_ids).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("kind", ["diagonal", "rectangular", "full"])
def test_batched_fits_equal_torch_lbfgs_on_the_dense_autograd_loss(kind, regime):
    """The reference code's way end to end (torch.optim.LBFGS, dense similarities, autograd) against ours."""
    features, sets = _sets(regime, seed=11)
    transform = Transform.make(kind, P, rectangular_k=2)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    ids = torch.tensor([0, 1])
    lams = torch.tensor([1e-3, 0.1], dtype=torch.float64)
    objective = TripletObjective(features, transform)
    result = minimize(lambda x, b: objective.value_and_grad(x, data, ids[b], lams[b]),
                      transform.initial(2, torch.float64, "cpu"))
    reference = DenseObjective(features, transform)
    for b in range(2):
        x, steps = fit_one(reference, data, int(ids[b]), float(lams[b]))
        torch.testing.assert_close(result.x[b], x, rtol=1e-7, atol=1e-9)
        assert int(result.epochs[b]) == steps
    assert ((result.x - transform.initial(1, torch.float64, "cpu")).abs().amax(dim=1) > 1e-3).all()


def test_sequential_peer_gets_the_hand_written_gradient_through_autograd():
    features, sets = _sets("many", seed=5)
    transform = Transform.make("full", P)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    ids, lams = torch.tensor([1]), torch.tensor([0.2], dtype=torch.float64)
    objective = TripletObjective(features, transform)
    start = _params(transform, 1, seed=9).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: objective.loss(x, data, ids, lams), (start,))


def test_fitting_memory_model_counts_the_gram_matrices_only_on_the_gram_path():
    features, _ = _sets("few", seed=1)
    transform = Transform.make("full", P)
    settings = fitting.SolverSettings(dtype="float64")
    objective = fitting.objective_for(features, transform, settings)
    u, item = 30, 8
    few, many = 5, 10 ** 6
    assert objective.path(u, few) == "rows" and objective.path(u, many) == "gram"
    per_triplet = 3 * (8 + item)
    rows = fitting.problem_bytes(objective, u, few, settings) - few * per_triplet
    gram = fitting.problem_bytes(objective, u, many, settings) - many * per_triplet
    assert gram - rows == 3 * u * u * item                               # G, dG and the symmetrised dG
    shared = fitting.problem_bytes(objective, u, many, settings, sets_per_problem=1 / 11)
    assert fitting.problem_bytes(objective, u, many, settings) - shared == pytest.approx(10 / 11 * many * per_triplet)


def test_cost_model_prefers_rows_below_and_gram_above_one_crossover():
    u, k = 865, 512
    sizes = [50 * 2 ** i for i in range(17)]
    choices = [similarity.plan(u, n, k, device_type="cuda") for n in sizes]
    assert choices[0] == "rows" and choices[-1] == "gram"
    assert choices == sorted(choices, key=lambda c: c == "gram")           # a single switch, rows then gram
    # TF32 makes the Gram products cheaper, so the switch comes at fewer triplets
    tf32 = [similarity.plan(u, n, k, device_type="cuda", tf32=True) for n in sizes]
    assert tf32.count("gram") > choices.count("gram")


def test_matmul_precision_sets_and_restores_the_cuda_tf32_flag():
    cuda = torch.device("cuda")
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        for outside in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = outside
            for inside in (False, True):
                with matmul_precision(cuda, inside):
                    assert torch.backends.cuda.matmul.allow_tf32 is inside
                assert torch.backends.cuda.matmul.allow_tf32 is outside
        torch.backends.cuda.matmul.allow_tf32 = True
        with matmul_precision(torch.device("cpu"), False):
            assert torch.backends.cuda.matmul.allow_tf32 is True              # CPU products are left alone
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
