"""Our preprocessing for timm models equals timm's own create_transform, for every catalog architecture."""
import numpy as np
import pytest
import timm
from PIL import Image
from timm.data import create_transform, resolve_data_config

from cortexbench.plugins.models.timm_models import CATALOG
from cortexbench.plugins.models.timm_models.model import preprocessing_from_config

IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 417, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", [f"{arch}.{tag}" for arch, tag, *_ in CATALOG])
def test_catalog_preprocessing_equals_timm(name):
    cfg = resolve_data_config(pretrained_cfg=timm.get_pretrained_cfg(name).to_dict())
    ours = preprocessing_from_config(cfg).transform()(IMAGE)
    reference = create_transform(**cfg)(IMAGE)
    assert ours.shape == reference.shape
    assert float((ours - reference).abs().max()) == 0.0


@pytest.mark.parametrize("crop_mode, crop_pct", [("squash", 0.9), ("center", 0.95), ("center", 1.0)])
def test_crop_modes_equal_timm(crop_mode, crop_pct):
    cfg = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
           "crop_pct": crop_pct, "crop_mode": crop_mode}
    ours = preprocessing_from_config(cfg).transform()(IMAGE)
    assert float((ours - create_transform(**cfg)(IMAGE)).abs().max()) == 0.0


def test_unsupported_border_mode_is_a_clear_error():
    from cortexbench.errors import InputError

    cfg = {"input_size": (3, 224, 224), "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3,
           "crop_pct": 0.9, "crop_mode": "border"}
    with pytest.raises(InputError, match="border"):
        preprocessing_from_config(cfg).transform()
