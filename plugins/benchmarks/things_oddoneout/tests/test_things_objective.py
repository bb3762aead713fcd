"""The batched probe loss against a per-judgment computation written out in numpy, its gradient, and both gathers."""
import numpy as np
import pytest
import torch

from cortexbench.plugins.benchmarks.things_oddoneout.objective import (TRANSFORMS, Transform, TripletBatch,
                                                                       TripletObjective)
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import count_choices


def _problem(seed=0, n_concepts=25, p=5, n_judgments=300):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_concepts, p))
    triplets = np.stack([rng.choice(n_concepts, 3, replace=False) for _ in range(n_judgments)])
    triplets[: n_judgments // 3] = triplets[0]                    # many repeats of one triplet, in one order
    choice = rng.integers(0, 3, n_judgments)
    return features, triplets, choice


def _numpy_loss(features, W, triplets, choice, lam, kind):
    """Mean over judgments of -log softmax([s_jk, s_ik, s_ij])[choice] + lam * penalty, in presentation order."""
    z = features @ W.T
    total = 0.0
    for (i, j, k), c in zip(triplets, choice):
        logits = np.array([z[j] @ z[k], z[i] @ z[k], z[i] @ z[j]])
        total += -(logits[c] - np.log(np.exp(logits - logits.max()).sum()) - logits.max())
    M = W.T @ W if kind == "rectangular" and W.shape[0] != W.shape[1] else W
    penalty = 0.0 if kind == "zero_shot" else np.sum((M - np.trace(M) / M.shape[1] * np.eye(M.shape[1])) ** 2)
    return total / len(choice) + lam * penalty


@pytest.mark.parametrize("kind", TRANSFORMS)
def test_loss_matches_per_judgment_numpy(kind):
    features, triplets, choice = _problem()
    transform = Transform.make(kind, features.shape[1], rectangular_k=3)
    rng = np.random.default_rng(1)
    params = transform.initial(2, torch.float64, "cpu") + 0.3 * torch.tensor(
        rng.normal(size=(2, transform.n_params)))
    data = TripletBatch.stack([count_choices(triplets, choice)], torch.float64, "cpu")
    objective = TripletObjective(torch.tensor(features), transform)
    lams = torch.tensor([0.0, 0.7], dtype=torch.float64)
    values = objective.loss(params, data, torch.zeros(2, dtype=torch.long), lams)
    for b in range(2):
        W = transform.matrix(params[b:b + 1])[0].numpy()
        assert float(values[b]) == pytest.approx(_numpy_loss(features, W, triplets, choice, float(lams[b]), kind),
                                                 rel=1e-10)


@pytest.mark.parametrize("kind", ["diagonal", "rectangular", "full"])
def test_gradient_passes_gradcheck_and_gathers_agree(kind):
    features, triplets, choice = _problem(seed=2, n_concepts=6, n_judgments=60)
    transform = Transform.make(kind, features.shape[1], rectangular_k=3)
    data = TripletBatch.stack([count_choices(triplets, choice)], torch.float64, "cpu")
    ids, lams = torch.zeros(1, dtype=torch.long), torch.tensor([0.5], dtype=torch.float64)
    start = transform.initial(1, torch.float64, "cpu") + 0.1
    rows = TripletObjective(torch.tensor(features), transform, mode="rows")
    gram = TripletObjective(torch.tensor(features), transform, mode="gram")
    assert torch.autograd.gradcheck(lambda x: rows.loss(x, data, ids, lams), (start.clone().requires_grad_(),))
    f_rows, g_rows = rows.value_and_grad(start, data, ids, lams)
    f_gram, g_gram = gram.value_and_grad(start, data, ids, lams)
    torch.testing.assert_close(f_rows, f_gram)
    torch.testing.assert_close(g_rows, g_gram)


def test_correct_counts_judgments_of_the_argmax_choice():
    features, triplets, choice = _problem(seed=4)
    transform = Transform.make("zero_shot", features.shape[1])
    objective = TripletObjective(torch.tensor(features), transform)
    data = TripletBatch.stack([count_choices(triplets, choice)], torch.float64, "cpu")
    params = transform.initial(1, torch.float64, "cpu")
    right = float(objective.correct(params, data, torch.zeros(1, dtype=torch.long))[0])
    s = features @ features.T
    predicted = [int(np.argmax([s[j, k], s[i, k], s[i, j]])) for i, j, k in triplets]
    assert right == float(np.sum(np.array(predicted) == choice))
