"""THINGS embedding "models": rows by uniqueID equal the files', and text finds its concepts."""
import numpy as np
import pytest

from cortexbench.activations import CachedCandidate
from cortexbench.errors import InputError
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.plugins.benchmarks.things_oddoneout.data import load_concepts
from cortexbench.stimuli import StimulusSet

FILES = {"things/vice-42d": ("vice/final_embedding.npy", 42),
         "things/spose-14d": ("thingsdecisions/spose_embedding_14d_sorted.npy", 14),
         "things/spose-82d": ("thingsdecisions/spose_embedding_82d_sorted.npy", 82)}


@pytest.mark.parametrize("identifier", sorted(FILES))
def test_concept_stimuli_return_the_embedding_rows(identifier, shared_data):
    path, dims = FILES[identifier]
    expected = np.load(shared_data / "things" / path)
    model = get_plugin_manager().create_model(identifier)
    stimuli = load_concepts().text_stimuli()
    features = CachedCandidate(model, batch_size=500).activations(stimuli, ["embedding"])["embedding"]
    assert features.shape == (1854, dims)
    np.testing.assert_array_equal(features.values, expected.astype(np.float32))
    assert list(features["stimulus"].values[:2]) == ["aardvark", "abacus"]


def test_text_lookup_by_name_synonym_and_homonym(shared_data):
    model = get_plugin_manager().create_model("things/vice-42d")
    table = np.load(shared_data / "things" / "vice" / "final_embedding.npy")
    ids = list(load_concepts().unique_ids)
    texts = ["Aardvark", "a red bicycle", "bat", "the ice cream and the bike"]
    stimuli = StimulusSet.from_texts("free text", texts)
    values = CachedCandidate(model).activations(stimuli, ["embedding"])["embedding"].values
    np.testing.assert_allclose(values[0], table[ids.index("aardvark")])
    np.testing.assert_allclose(values[1], table[ids.index("bike")])                 # WordNet synonym "bicycle"
    np.testing.assert_allclose(values[2], table[[ids.index("bat1"), ids.index("bat2")]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(values[3], table[[ids.index("ice_cream"), ids.index("bike")]].mean(0), rtol=1e-6)
    with pytest.raises(InputError, match="names no THINGS concept"):
        CachedCandidate(model).activations(StimulusSet.from_texts("x", ["qwzx vbnm"]), ["embedding"])


def test_image_stimuli_are_matched_by_their_uniqueid():
    model = get_plugin_manager().create_model("things/spose-14d")
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    stimuli = StimulusSet.from_arrays("imgs", [image, image], ["zebra", "aardvark"])
    values = CachedCandidate(model).activations(stimuli, ["embedding"])["embedding"].values
    np.testing.assert_array_equal(values[1], model.embedding[0])
    with pytest.raises(InputError, match="uniqueIDs as ids"):
        CachedCandidate(model).activations(StimulusSet.from_arrays("imgs", [image], ["img001"]), ["embedding"])
