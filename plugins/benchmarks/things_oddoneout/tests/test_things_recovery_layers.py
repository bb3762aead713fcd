"""Which features model recovery reads: the last non-head layer by default, and GloVe's zero vectors for THINGS."""
import numpy as np
import pytest
import xarray as xr

from cortexbench.errors import InputError
from cortexbench.interfaces import make_layers
from cortexbench.plugins.benchmarks.things_oddoneout.data import load_concepts
from cortexbench.plugins.benchmarks.things_oddoneout.human import concept_stimuli
from cortexbench.plugins.benchmarks.things_oddoneout.recovery_benchmark import (ThingsRecoveryBenchmark,
                                                                                representational_layer)


class LayeredStub:
    """A candidate with a classifier head after its penultimate layer; each layer's features say which it is."""

    identifier = "stub/classifier"

    def __init__(self):
        self.layers = make_layers(["early", "penultimate", "logits"], "NC", heads=["logits"])
        self.requested = []

    def activations(self, stimuli, layers, pooling="avg"):
        self.requested += list(layers)
        code = {"early": 1.0, "penultimate": 2.0, "logits": 3.0}
        return {name: xr.DataArray(np.full((len(stimuli), 4), code[name]), dims=("stimulus", "unit"))
                for name in layers}


def test_default_layer_is_the_last_non_head_layer():
    assert representational_layer(make_layers(["a", "b", "fc"], "NC", heads=["fc"])) == "b"
    assert representational_layer(make_layers(["a", "b"], "NC")) == "b"                # no head marked
    assert representational_layer(make_layers(["fc"], "NC", heads=["fc"])) == "fc"      # nothing else to read


def test_recovery_reads_the_penultimate_layer_and_gives_glove_zero_vectors(shared_data):
    stimuli = concept_stimuli(load_concepts(), None, "Word")
    bench = ThingsRecoveryBenchmark(identifier="things.recovery", version="1", pool=["glove/6B-50d"])
    candidate = LayeredStub()
    features, provenance = bench._features(candidate, stimuli)
    assert candidate.requested == ["penultimate"] and provenance["stub/classifier"]["layer"] == "penultimate"
    assert (features["stub/classifier"] == 2.0).all()
    glove = features["glove/6B-50d"]
    assert provenance["glove/6B-50d"]["options"] == {"oov": "zero"}
    words = [stimuli.load(i) for i in range(len(stimuli))]
    zero = np.flatnonzero(~glove.any(axis=1))
    assert len(zero) == 18 and "backscratcher" in [words[i] for i in zero]
    # an explicit layer and explicit pool options still win
    bench = ThingsRecoveryBenchmark(identifier="things.recovery", version="1", pool=["glove/6B-50d"],
                                    layer="logits", pool_options={"glove/6B-50d": {"oov": "error"}})
    with pytest.raises(InputError, match="GloVe vocabulary"):
        bench._features(LayeredStub(), stimuli)
