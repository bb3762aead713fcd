"""Generators' temperatures are calibrated on held-out predictions (cross-fitting), not on their own training data.

Planted world: 120 concepts with 5 true features; people answer 300 triplets 20 times each by the zero-shot model of
those features. The generator reads the 5 true features plus 40 noise features through a full 45 x 45 W with almost
no shrinkage, so it over-fits its 300 training triplets. Its true temperature is the one at which its confidence
(mean max-probability) on 20,000 fresh triplets of the same world equals the ceiling: what the reference code gets
by calibrating on a test set it never trained on.
"""
import numpy as np
import pytest
import torch

from cortexbench.errors import InputError
from cortexbench.plugins.benchmarks.things_oddoneout.calibration import calibrate_temperature, expected_accuracy
from cortexbench.plugins.benchmarks.things_oddoneout.fitting import SolverSettings, as_features
from cortexbench.plugins.benchmarks.things_oddoneout.human import HumanData
from cortexbench.plugins.benchmarks.things_oddoneout.noise_ceiling import loo_ceiling
from cortexbench.plugins.benchmarks.things_oddoneout.objective import Transform, TripletObjective
from cortexbench.plugins.benchmarks.things_oddoneout.recovery import Generator, fit_generator, simulate
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import (count_choices, sample_unique_triplets,
                                                                      triplet_keys)

N_CONCEPTS, TRUE_DIMS, NOISE_DIMS = 120, 5, 40


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    settings = SolverSettings(dtype="float64")
    true = rng.normal(size=(N_CONCEPTS, TRUE_DIMS))
    people = Generator("people", Transform.make("zero_shot", TRUE_DIMS), torch.zeros(0, dtype=torch.float64), 1.0,
                       np.nan, np.nan, np.nan)
    triplets = sample_unique_triplets(np.arange(N_CONCEPTS), 300, rng, None, N_CONCEPTS)
    repeated = np.repeat(triplets, 20, axis=0)
    counts = count_choices(repeated, simulate(people, as_features(true, settings), repeated, (1,), settings))
    human = HumanData(counts, counts, loo_ceiling(counts.counts), "planted", np.unique(triplet_keys(triplets,
                                                                                                    N_CONCEPTS)),
                      "planted: pool = calibration, as the mirror's held-out judgments")
    features = as_features(np.concatenate([true, rng.normal(size=(N_CONCEPTS, NOISE_DIMS))], axis=1), settings)
    fresh = sample_unique_triplets(np.arange(N_CONCEPTS), 20_000, np.random.default_rng(5), human.excluded,
                                   N_CONCEPTS)
    return human, features, fresh, settings


def _fit(world, calibration):
    human, features, _, settings = world
    transform = Transform.make("full", features.shape[1])
    return fit_generator("g", features, transform, human, [1e-6], 5, 42, settings, calibration=calibration)


def _fresh_logits(world, generator):
    _, features, fresh, _ = world
    objective = TripletObjective(features, generator.transform)
    return objective.logits(generator.params[None], torch.as_tensor(fresh)[None])[0].numpy()


def test_cross_fitted_calibration_recovers_the_true_temperature_and_in_sample_is_over_confident(world):
    human = world[0]
    crossed, in_sample = _fit(world, "cross_fit"), _fit(world, "in_sample")
    assert torch.equal(crossed.params, in_sample.params)                   # same W; only the calibration differs
    fresh = _fresh_logits(world, crossed)
    weights = np.ones(len(fresh))
    true_temperature = calibrate_temperature(fresh, weights, human.ceiling)
    assert abs(np.log(crossed.temperature / true_temperature)) < 0.1
    assert expected_accuracy(fresh, weights, crossed.temperature) == pytest.approx(human.ceiling, abs=0.02)
    # in-sample: too low a temperature, so the synthetic judgments are more consistent than people's
    assert in_sample.temperature < 0.6 * true_temperature
    assert expected_accuracy(fresh, weights, in_sample.temperature) > human.ceiling + 0.08
    # its accuracy on the calibration judgments is in-sample too (inflated); the cross-fitted one is held out
    assert in_sample.human_accuracy > crossed.human_accuracy + 0.1


def test_default_calibration_is_cross_fitted_and_names_are_checked(world):
    human, features, _, settings = world
    transform = Transform.make("full", features.shape[1])
    default = fit_generator("g", features, transform, human, [1e-6], 5, 42, settings)
    assert default.temperature == pytest.approx(_fit(world, "cross_fit").temperature, rel=1e-12)
    with pytest.raises(InputError, match="calibration must be"):
        fit_generator("g", features, transform, human, [1e-6], 5, 42, settings, calibration="test")


def test_disjoint_calibration_triplets_use_the_full_fit(world):
    """With calibration triplets that the pool does not hold (the published file's test set 2), both ways agree:
    every calibration triplet is held out of the fit already."""
    human, features, _, settings = world
    rng = np.random.default_rng(9)
    other = sample_unique_triplets(np.arange(N_CONCEPTS), 200, rng, human.excluded, N_CONCEPTS)
    counts = count_choices(np.repeat(other, 5, axis=0), rng.integers(0, 3, size=1000))
    disjoint = HumanData(human.pool, counts, human.ceiling, "planted", human.excluded, "planted")
    transform = Transform.make("full", features.shape[1])
    a = fit_generator("g", features, transform, disjoint, [1e-6], 5, 42, settings, calibration="cross_fit")
    b = fit_generator("g", features, transform, disjoint, [1e-6], 5, 42, settings, calibration="in_sample")
    assert a.temperature == pytest.approx(b.temperature, rel=1e-12)
