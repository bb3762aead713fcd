"""timm models: any timm architecture, pretrained (weights found offline) or at seeded random initialisation.

Identifiers: ``timm/<arch>`` (timm's default pretrained tag), ``timm/<arch>.<tag>`` and
``timm/<arch>.untrained-seed<N>``. A curated list (``CATALOG``, static data so that listing never imports timm)
is registered, each architecture pretrained and as ``.untrained-seed0``; any other timm architecture resolves on
demand through the model family. Factory options: ``weights=PATH`` (``--weights``), ``granularity`` (which
modules are layers: ``feature_info``, ``shen`` or ``blocks``; see layers.py) and ``video_frames``
(``preprocess`` or ``direct``). See README.md.
"""
from __future__ import annotations

import re

from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelFamily, ModelSpec

PREFIX = "timm/"
_UNTRAINED = re.compile(r"(?P<arch>[A-Za-z0-9_]+)\.untrained-seed(?P<seed>\d+)")
_PRETRAINED = re.compile(r"(?P<arch>[A-Za-z0-9_]+)(?:\.(?P<tag>[A-Za-z0-9_][A-Za-z0-9_-]*))?")
CITATION = "Wightman R (2019). PyTorch Image Models. https://github.com/huggingface/pytorch-image-models"
MODALITIES = ("image", "video")

#: (architecture, pretrained tag, family, description): widely used CNNs, ViTs and hybrids. The tag is timm's
#: default for the architecture (timm 1.0), written out so the identifier names fixed weights.
CATALOG: tuple[tuple[str, str, str, str], ...] = (
    ("resnet18", "a1_in1k", "CNN", "ResNet-18 (He et al. 2016), ImageNet-1k, RSB A1 recipe"),
    ("resnet50", "a1_in1k", "CNN", "ResNet-50 (He et al. 2016), ImageNet-1k, RSB A1 recipe"),
    ("resnet101", "a1h_in1k", "CNN", "ResNet-101 (He et al. 2016), ImageNet-1k, RSB A1h recipe"),
    ("vgg16", "tv_in1k", "CNN", "VGG-16 (Simonyan & Zisserman 2015), torchvision ImageNet-1k weights"),
    ("densenet121", "ra_in1k", "CNN", "DenseNet-121 (Huang et al. 2017), ImageNet-1k"),
    ("inception_v3", "tv_in1k", "CNN", "Inception-v3 (Szegedy et al. 2016), torchvision ImageNet-1k weights"),
    ("mobilenetv2_100", "ra_in1k", "CNN", "MobileNetV2 1.0 (Sandler et al. 2018), ImageNet-1k"),
    ("mobilenetv3_large_100", "ra_in1k", "CNN", "MobileNetV3-Large 1.0 (Howard et al. 2019), ImageNet-1k"),
    ("efficientnet_b0", "ra_in1k", "CNN", "EfficientNet-B0 (Tan & Le 2019), ImageNet-1k"),
    ("regnety_016", "tv2_in1k", "CNN", "RegNetY-1.6GF (Radosavovic et al. 2020), torchvision v2 ImageNet-1k"),
    ("convnext_tiny", "in12k_ft_in1k", "CNN", "ConvNeXt-T (Liu et al. 2022), ImageNet-12k then 1k"),
    ("vit_small_patch16_224", "augreg_in21k_ft_in1k", "ViT", "ViT-S/16 (Dosovitskiy et al. 2021), AugReg IN-21k+1k"),
    ("vit_base_patch16_224", "augreg2_in21k_ft_in1k", "ViT", "ViT-B/16 (Dosovitskiy et al. 2021), AugReg IN-21k+1k"),
    ("deit_small_patch16_224", "fb_in1k", "ViT", "DeiT-S/16 (Touvron et al. 2021), ImageNet-1k"),
    ("vit_base_patch16_clip_224", "openai", "ViT", "CLIP ViT-B/16 image tower (Radford et al. 2021), OpenAI"),
    ("vit_small_patch14_dinov2", "lvd142m", "ViT", "DINOv2 ViT-S/14 (Oquab et al. 2024), self-supervised LVD-142M"),
    ("swin_tiny_patch4_window7_224", "ms_in1k", "ViT", "Swin-T (Liu et al. 2021), ImageNet-1k"),
    ("vit_base_r50_s16_384", "orig_in21k_ft_in1k", "hybrid", "R50+ViT-B/16 hybrid (Dosovitskiy et al. 2021)"),
    ("coatnet_0_rw_224", "sw_in1k", "hybrid", "CoAtNet-0 (Dai et al. 2021), conv + attention stages, ImageNet-1k"),
    ("maxvit_tiny_tf_224", "in1k", "hybrid", "MaxViT-T (Tu et al. 2022), MBConv + attention, ImageNet-1k"),
    ("convit_small", "fb_in1k", "hybrid", "ConViT-S (d'Ascoli et al. 2021), gated positional attention"),
    ("levit_128", "fb_dist_in1k", "hybrid", "LeViT-128 (Graham et al. 2021), conv stem + attention, distilled"),
    ("mobilevit_s", "cvnets_in1k", "hybrid", "MobileViT-S (Mehta & Rastegari 2022), ImageNet-1k"),
)


def pretrained_spec(arch: str, tag: str | None, description: str = "") -> ModelSpec:
    def factory(**options):
        from .model import build_pretrained

        return build_pretrained(arch, tag, **options)

    name = f"{arch}.{tag}" if tag else arch
    return ModelSpec(
        identifier=f"{PREFIX}{name}",
        factory=factory,
        description=(description or f"timm {name}") + ("" if tag else " (timm's default pretrained tag)")
        + "; weights from the Hugging Face cache, $CORTEXBENCH_WEIGHTS or --weights",
        modalities=MODALITIES,
        family="timm",
        trained=True,
        citation=CITATION,
    )


def untrained_spec(arch: str, seed: int) -> ModelSpec:
    def factory(**options):
        from .model import build_untrained

        return build_untrained(arch, seed, **options)

    return ModelSpec(
        identifier=f"{PREFIX}{arch}.untrained-seed{seed}",
        factory=factory,
        description=f"timm {arch} at random initialisation (torch seed {seed}); an untrained control",
        modalities=MODALITIES,
        family="timm",
        trained=False,
        citation=CITATION,
    )


def resolve(identifier: str) -> ModelSpec | None:
    """Any ``timm/...`` identifier of the right shape; the architecture and tag are checked when it is built."""
    rest = identifier[len(PREFIX):]
    untrained = _UNTRAINED.fullmatch(rest)
    if untrained is not None:
        return untrained_spec(untrained["arch"], int(untrained["seed"]))
    pretrained = _PRETRAINED.fullmatch(rest)
    if pretrained is not None:
        return pretrained_spec(pretrained["arch"], pretrained["tag"])
    return None


@hookimpl
def cortexbench_models():
    specs = []
    for arch, tag, family, description in CATALOG:
        specs.append(pretrained_spec(arch, tag, f"{description} [{family}]"))
        specs.append(untrained_spec(arch, 0))
    return specs


@hookimpl
def cortexbench_model_families():
    return [ModelFamily(PREFIX, resolve, "any timm architecture: timm/<arch> (default pretrained tag), "
                                         "timm/<arch>.<tag>, timm/<arch>.untrained-seed<N>")]
