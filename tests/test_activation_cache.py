"""The activation cache is keyed by content: any change of weights, preprocessing or stimulus bytes misses."""
import dataclasses

import numpy as np
import pytest

from cortexbench.activations import ActivationStore, CachedCandidate
from cortexbench.errors import InputError
from cortexbench.interfaces import ActivationBatch, make_layers
from cortexbench.stimuli import StimulusSet


@dataclasses.dataclass
class CountingModel:
    """A planted model: layer k returns the mean pixel value times (k + 1) times the weight."""

    weight: float = 1.0
    preprocessing: str = "resize-8"
    identifier: str = "test/counting"
    modalities: frozenset = frozenset({"image"})
    calls: int = 0
    fail_after: int | None = None

    @property
    def layers(self):
        return make_layers(["l0", "l1", "l2"], "NC")

    region_layer_map = {}

    def fingerprint(self):
        return {"weights": f"w={self.weight}", "preprocessing": self.preprocessing}

    def iter_activations(self, stimuli, layers, *, pooling, device, batch_size, precision):
        self.calls += 1
        for start in range(0, len(stimuli), batch_size):
            if self.fail_after is not None and start >= self.fail_after:
                raise RuntimeError("crash mid-extraction")
            means = [np.asarray(stimuli.load(i), dtype=float).mean() for i in range(start, min(start + batch_size,
                                                                                                 len(stimuli)))]
            yield ActivationBatch(start, {
                name: np.array([[m * (int(name[1]) + 1) * self.weight, 1.0] for m in means]) for name in layers})


def images(n=10, bump=0):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (6, 6, 3), dtype=np.uint8) for _ in range(n)]
    arrays[0] = (arrays[0] + bump).astype(np.uint8)
    return StimulusSet.from_arrays("planted", arrays, [f"s{i}" for i in range(n)])


def test_values_are_streamed_in_order_and_cached(tmp_path):
    model, stimuli = CountingModel(), images()
    candidate = CachedCandidate(model, ActivationStore(tmp_path), batch_size=3)
    first = candidate.activations(stimuli, ["l0", "l2"])
    expected = [np.asarray(stimuli.load(i), dtype=float).mean() * 3 for i in range(len(stimuli))]
    np.testing.assert_allclose(first["l2"].values[:, 0], expected, rtol=1e-6)
    assert list(first["l2"]["stimulus"].values) == list(stimuli.stimulus_ids)
    assert first["l2"].attrs["depth"] == 1.0 and model.calls == 1
    again = CachedCandidate(model, ActivationStore(tmp_path)).activations(stimuli, ["l2", "l0"])
    assert model.calls == 1                                        # served from disk
    np.testing.assert_array_equal(again["l2"].values, first["l2"].values)
    CachedCandidate(model, ActivationStore(tmp_path)).activations(stimuli, ["l0", "l1"])
    assert model.calls == 2                                        # only the missing layer was extracted


@pytest.mark.parametrize("change", ["weights", "preprocessing", "stimulus bytes", "pooling", "precision"])
def test_any_content_change_misses_the_cache(tmp_path, change):
    model, stimuli = CountingModel(), images()
    CachedCandidate(model, ActivationStore(tmp_path)).activations(stimuli, ["l1"])
    kwargs, pooling = {}, "avg"
    if change == "weights":
        model = CountingModel(weight=2.0)
    elif change == "preprocessing":
        model = CountingModel(preprocessing="resize-16")
    elif change == "stimulus bytes":
        stimuli = images(bump=1)
    elif change == "pooling":
        pooling = "flatten"
    else:
        kwargs["precision"] = "bf16"
    fresh = CachedCandidate(model, ActivationStore(tmp_path), **kwargs)
    fresh.activations(stimuli, ["l1"], pooling=pooling)
    assert fresh.cache_misses == 1 and fresh.cache_hits == 0


def test_a_crash_mid_extraction_leaves_no_partial_entry(tmp_path):
    model, stimuli = CountingModel(fail_after=6), images()
    with pytest.raises(RuntimeError, match="crash"):
        CachedCandidate(model, ActivationStore(tmp_path), batch_size=3).activations(stimuli, ["l0"])
    assert not list(tmp_path.rglob("*.npy"))
    fixed = CachedCandidate(CountingModel(), ActivationStore(tmp_path), batch_size=3)
    fixed.activations(stimuli, ["l0"])
    assert fixed.cache_misses == 1


def test_bad_requests_are_clear_errors(tmp_path):
    candidate = CachedCandidate(CountingModel(), ActivationStore(tmp_path))
    with pytest.raises(InputError, match="no layer"):
        candidate.activations(images(), ["l9"])
    with pytest.raises(InputError, match="accepts"):
        candidate.activations(StimulusSet.from_texts("words", ["a", "b"]), ["l0"])
    with pytest.raises(InputError, match="pooling"):
        candidate.activations(images(), ["l0"], pooling="max")


def test_stimulus_set_identity_is_its_content():
    a, b = images(), images()
    assert a.content_hash == b.content_hash
    assert images(bump=1).content_hash != a.content_hash
    renamed = StimulusSet.from_arrays("other-name", list(a.items), a.stimulus_ids)
    assert renamed.content_hash == a.content_hash                       # the name is not the identity
    reordered = a.subset(list(range(len(a)))[::-1])
    assert reordered.content_hash != a.content_hash
    with pytest.raises(InputError, match="unique"):
        StimulusSet.from_texts("dupes", ["x", "y"], ids=["a", "a"])
    with pytest.raises(InputError, match="not in stimulus set"):
        a.indices_of(["s1", "nope"], what="brain data")


def test_an_uncached_run_leaves_no_files_behind():
    from pathlib import Path

    candidate = CachedCandidate(CountingModel())                      # no store: a scratch folder
    candidate.activations(images(), ["l0"])
    scratch = Path(candidate.store.root)
    assert list(scratch.rglob("*.npy"))
    candidate.close()
    assert not scratch.exists()
