"""GloVe 6B-50d: the published vectors, word splitting and averaging, unknown words."""
from __future__ import annotations

import numpy as np
import pytest

from cortexbench.errors import InputError
from cortexbench.extraction import extract_all
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.plugins.models.glove.model import words
from cortexbench.stimuli import StimulusSet

MANAGER = get_plugin_manager()

# The first line of Stanford's glove.6B.50d.txt ("the" followed by its first eight components).
THE = [0.418, 0.24968, -0.41242, 0.1217, 0.34527, -0.044457, -0.49688, -0.17862]


@pytest.fixture(scope="module")
def glove():
    return MANAGER.create_model("glove/6B-50d")


def test_published_vector_of_the(glove):
    got = extract_all(glove, StimulusSet.from_texts("t", ["The"]), ["embedding"])["embedding"]
    assert got.shape == (1, 50)
    np.testing.assert_allclose(got[0, :8], THE, rtol=1e-5)
    assert glove.fingerprint()["weights"].startswith("sha256:")


def test_multi_word_names_are_averaged_and_semantics_hold(glove):
    texts = ["ice_cream", "ice", "cream", "dog", "cat", "piano", "Air conditioner"]
    got = extract_all(glove, StimulusSet.from_texts("t", texts), ["embedding"], batch_size=3)["embedding"]
    np.testing.assert_allclose(got[0], (got[1] + got[2]) / 2, rtol=1e-6)
    cosine = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cosine(got[3], got[4]) > cosine(got[3], got[5]) + 0.3     # dog is nearer cat than piano
    assert words("Air conditioner (unit)") == ["air", "conditioner", "unit"]
    assert words("t-shirt") == ["t-shirt"]


def test_unknown_words(glove):
    with pytest.raises(InputError, match="qzxvbnm"):
        extract_all(glove, StimulusSet.from_texts("t", ["qzxvbnm"]), ["embedding"])
    zero = MANAGER.create_model("glove/6B-50d", oov="zero")
    got = extract_all(zero, StimulusSet.from_texts("t", ["qzxvbnm", "dog qzxvbnm"]), ["embedding"])["embedding"]
    assert not got[0].any()
    dog = extract_all(zero, StimulusSet.from_texts("t", ["dog"]), ["embedding"])["embedding"]
    np.testing.assert_allclose(got[1], dog[0])  # unknown words are skipped, known ones kept
    with pytest.raises(InputError, match=r"accepts \[.text.\] stimuli"):
        extract_all(glove, StimulusSet.from_arrays("i", [np.zeros((4, 4, 3), np.uint8)], ["a"]), ["embedding"])
