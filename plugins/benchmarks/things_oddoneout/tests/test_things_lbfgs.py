"""The batched L-BFGS reproduces torch.optim.LBFGS run fit by fit (the reference code's way), on planted data."""
import numpy as np
import pytest
import torch

from cortexbench.plugins.benchmarks.things_oddoneout import fitting
from cortexbench.plugins.benchmarks.things_oddoneout.fitting import SolverSettings
from cortexbench.plugins.benchmarks.things_oddoneout.lbfgs import minimize
from cortexbench.plugins.benchmarks.things_oddoneout.objective import Transform, TripletBatch, TripletObjective
from cortexbench.plugins.benchmarks.things_oddoneout.sequential import fit_one
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import one_hot, sample_unique_triplets

N_CONCEPTS, P = 80, 6


def _planted(seed: int, n: int, features: np.ndarray):
    """Judgments sampled from a hidden 3-d embedding that the features contain, mixed and noisy."""
    rng = np.random.default_rng(seed)
    hidden = features[:, :3] * np.array([2.0, 1.5, 1.0])
    triplets = sample_unique_triplets(np.arange(N_CONCEPTS), n, rng, None, N_CONCEPTS)
    i, j, k = triplets.T
    s = lambda a, b: (hidden[a] * hidden[b]).sum(1)
    logits = np.stack([s(j, k), s(i, k), s(i, j)], 1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    choice = (rng.random(n)[:, None] > np.cumsum(p, 1)[:, :2]).sum(1)
    return one_hot(triplets, choice)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(N_CONCEPTS, P))
    features[:, 3:] *= 3.0                                    # loud irrelevant dimensions
    sets = [_planted(s, 400, features) for s in range(3)]
    return torch.tensor(features), sets


@pytest.mark.parametrize("kind", ["diagonal", "rectangular", "full"])
def test_batched_solutions_equal_sequential_torch_lbfgs(planted, kind):
    features, sets = planted
    transform = Transform.make(kind, P, rectangular_k=3)
    objective = TripletObjective(features, transform)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    problems = [(0, 1e-4), (1, 1e-2), (2, 1.0)]
    ids = torch.tensor([d for d, _ in problems])
    lams = torch.tensor([lam for _, lam in problems], dtype=torch.float64)
    result = minimize(lambda x, b: objective.value_and_grad(x, data, ids[b], lams[b]),
                      transform.initial(len(problems), torch.float64, "cpu"))
    for b, (d, lam) in enumerate(problems):
        x, steps = fit_one(objective, data, d, lam)
        torch.testing.assert_close(result.x[b], x, rtol=1e-7, atol=1e-9)
        assert int(result.epochs[b]) == steps
    moved = (result.x - transform.initial(1, torch.float64, "cpu")).abs().amax(dim=1)
    assert (moved > 1e-3).all()                                   # every problem actually optimised


def test_stopping_is_per_problem_and_independent_of_batch_company(planted):
    features, sets = planted
    transform = Transform.make("full", P)
    objective = TripletObjective(features, transform)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    lams = torch.tensor([1e-6, 1e3, 1e-2], dtype=torch.float64)   # very different convergence speeds
    ids = torch.tensor([0, 1, 2])
    together = minimize(lambda x, b: objective.value_and_grad(x, data, ids[b], lams[b]),
                        transform.initial(3, torch.float64, "cpu"))
    assert len(set(together.iterations.tolist())) > 1              # they stopped at different iterations
    for b in range(3):
        alone = minimize(lambda x, _: objective.value_and_grad(x, data, ids[b:b + 1], lams[b:b + 1]),
                         transform.initial(1, torch.float64, "cpu"))
        torch.testing.assert_close(together.x[b], alone.x[0], rtol=1e-9, atol=1e-11)
        assert together.iterations[b] == alone.iterations[0]


def test_chunking_by_memory_does_not_change_solutions(planted):
    features, sets = planted
    transform = Transform.make("diagonal", P)
    whole = fitting.fit(features, transform, sets, [0, 1, 2, 0], [1e-3, 1e-3, 1e-1, 1.0],
                        SolverSettings(dtype="float64"))
    pieces = fitting.fit(features, transform, sets, [0, 1, 2, 0], [1e-3, 1e-3, 1e-1, 1.0],
                         SolverSettings(dtype="float64", max_batch=1))
    torch.testing.assert_close(whole, pieces, rtol=1e-9, atol=1e-11)


def test_fitted_probe_finds_the_planted_dimensions(planted):
    features, _ = planted
    train, test = _planted(10, 3000, features.numpy()), _planted(11, 2000, features.numpy())
    settings = SolverSettings(dtype="float64")
    accuracy = {}
    for kind in ("zero_shot", "diagonal"):
        transform = Transform.make(kind, P)
        params = fitting.fit(features, transform, [train], [0], [1e-4], settings)
        accuracy[kind] = fitting.correct(features, transform, params, [test], [0], settings)[0] / test.n_responses
        if kind == "diagonal":
            weights = params[0].abs()
            assert weights[3:].max() < weights[:3].min()           # loud irrelevant dimensions are turned down
    assert accuracy["diagonal"] > accuracy["zero_shot"] + 0.05


@pytest.mark.parametrize("history", [1, 3])
def test_short_history_wraps_like_torch_lbfgs(planted, history):
    """A history shorter than the run: pairs are dropped oldest first, and the compact-form direction still
    equals torch's two-loop recursion step for step."""
    from cortexbench.plugins.benchmarks.things_oddoneout.lbfgs import LBFGSOptions

    features, sets = planted
    transform = Transform.make("full", P)
    objective = TripletObjective(features, transform)
    data = TripletBatch.stack(sets, torch.float64, "cpu")
    options = LBFGSOptions(history_size=history, max_epochs=4)
    ids, lams = torch.tensor([0, 1]), torch.tensor([1e-5, 1e-1], dtype=torch.float64)
    result = minimize(lambda x, b: objective.value_and_grad(x, data, ids[b], lams[b]),
                      transform.initial(2, torch.float64, "cpu"), options)
    assert int(result.iterations.min()) > 2 * history                 # the ring buffer wrapped
    for b in range(2):
        x, steps = fit_one(objective, data, int(ids[b]), float(lams[b]), options)
        torch.testing.assert_close(result.x[b], x, rtol=1e-7, atol=1e-9)
        assert int(result.epochs[b]) == steps


@pytest.mark.parametrize("skip_some", [False, True])
def test_batched_line_search_equals_torch_strong_wolfe_in_every_branch(skip_some):
    """Many line searches at once (steps from far too short to far too long, on smooth non-convex functions, so
    that extension, bracketing, zoom, end swaps and exhaustion all occur) return what torch's own
    ``_strong_wolfe`` returns for each of them: loss, gradient, step and evaluations. Problems that do not search
    (``searching``, the solver's no-descent case) change nothing for the others."""
    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe

    from cortexbench.plugins.benchmarks.things_oddoneout.lbfgs import LBFGSOptions, _strong_wolfe

    rng = np.random.default_rng(3)
    n, dim = 400, 4
    centre = torch.tensor(rng.normal(size=(n, dim)))
    scale = torch.tensor(rng.uniform(0.2, 5.0, size=(n, dim)))
    wiggle = torch.tensor(rng.uniform(0.0, 20.0, size=n))

    def value(x, rows):               # bowl + ripples: several local minima along most lines
        z = x - centre[rows]
        return (scale[rows] * z ** 2).sum(1) + wiggle[rows] * torch.sin(5 * z).sum(1)

    def fun(x, rows):
        x = x.detach().requires_grad_(True)
        f = value(x, rows)
        (g,) = torch.autograd.grad(f.sum(), x)
        return f.detach(), g

    x = torch.tensor(rng.normal(size=(n, dim)))
    rows = torch.arange(n)
    f, g = fun(x, rows)
    d = -g * torch.tensor(rng.uniform(0.5, 2.0, size=(n, 1)))
    gtd = (g * d).sum(1)
    t = torch.tensor(10.0 ** rng.uniform(-4, 1.5, size=n))
    options = LBFGSOptions(c2=0.1)                                      # a strict curvature test: long zooms
    max_ls = torch.full((n,), 25, dtype=torch.long)
    max_ls[::7] = 2                                                     # some run out of evaluations
    searching = torch.tensor([b % 5 != 2 for b in range(n)]) if skip_some else None
    f_b, g_b, t_b, evals_b = _strong_wolfe(fun, rows, x, t, d, f, g, gtd, max_ls, options, searching=searching)
    for b in range(n):
        if skip_some and b % 5 == 2:
            continue
        def obj(x_b, step, d_b, b=b):
            value_b, grad_b = fun((x_b + step * d_b)[None], rows[b:b + 1])
            return float(value_b[0]), grad_b[0]
        f_t, g_t, t_t, evals_t = torch_strong_wolfe(obj, x[b], float(t[b]), d[b], float(f[b]), g[b], gtd[b],
                                                    c1=options.c1, c2=options.c2,
                                                    tolerance_change=options.line_search_tolerance,
                                                    max_ls=int(max_ls[b]))
        assert float(f_b[b]) == pytest.approx(float(f_t), rel=1e-9, abs=1e-9)
        torch.testing.assert_close(g_b[b], g_t, rtol=1e-9, atol=1e-9)
        assert float(t_b[b]) == pytest.approx(float(t_t), rel=1e-9, abs=1e-12)
        assert int(evals_b[b]) == evals_t
