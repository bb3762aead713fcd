"""The float network recovered from the int8 TorchScript file behaves like the quantized original."""
import numpy as np
import pytest
import torch

from cortexbench.data import resolve
from cortexbench.extraction import Preprocessing
from cortexbench.plugins.models.mobilenet_v2 import DATASET
from cortexbench.plugins.models.mobilenet_v2.model import LAYERS, build_model, imagenet_labels
from cortexbench.plugins.models.mobilenet_v2.recover import load_quantized, recover_float_model

ANIMAL_CLASSES = 398  # ImageNet-1k classes 0..397 are animals (tench ... ), 398.. are objects and scenes


@pytest.fixture(scope="module")
def logits(shared_data):
    from cortexbench.plugins.benchmarks.classic_rsa import kriegeskorte2008

    stimuli = kriegeskorte2008.stimuli()
    transform = Preprocessing().transform()
    x = torch.stack([transform(stimuli.load(i)) for i in range(len(stimuli))])
    quantized = load_quantized(resolve(DATASET, "mobilenet_quantized.pt"))
    recovered = recover_float_model(quantized)
    with torch.no_grad():
        q = torch.cat([quantized(x[i:i + 1]) for i in range(len(x))])   # the int8 graph runs at batch size 1 only
        f = recovered(x)
    return q, f, np.array(stimuli.metadata["category"])


def test_recovered_model_agrees_with_the_quantized_original(logits):
    q, f, _ = logits
    assert (q.argmax(1) == f.argmax(1)).float().mean() >= 0.85
    assert np.corrcoef(q.flatten().numpy(), f.flatten().numpy())[0, 1] > 0.98


def test_top1_labels_are_sensible(logits):
    _, f, categories = logits
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[0].startswith("tench")
    top1 = f.argmax(1).numpy()
    animals = np.isin(categories, ["nonhuman face", "nonhuman bodypart"])
    artefacts = categories == "artificial inanimate"
    assert (top1[animals] < ANIMAL_CLASSES).mean() >= 0.8      # animal pictures -> ImageNet animal classes
    assert (top1[artefacts] < ANIMAL_CLASSES).mean() <= 0.1    # man-made objects -> object classes


def test_folded_batch_norm_is_an_exact_affine_identity(shared_data):
    model = recover_float_model(load_quantized(resolve(DATASET, "mobilenet_quantized.pt")))
    norm = model.features[0][1]
    x = torch.randn(2, norm.num_features, 5, 5)
    torch.testing.assert_close(norm(x), x + norm.bias[None, :, None, None], rtol=0, atol=1e-6)


def test_every_block_is_hookable_with_ordered_depths(shared_data):
    model = build_model()
    assert [layer.name for layer in model.layers] == LAYERS
    depths = [layer.depth for layer in model.layers]
    assert depths[0] == 0.0 and depths[-1] == 1.0 and np.all(np.diff(depths) > 0)
    assert model.fingerprint()["weights"] == f"sha256:{DATASET.file('mobilenet_quantized.pt').sha256}"
