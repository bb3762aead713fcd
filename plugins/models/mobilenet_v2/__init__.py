"""MobileNetV2 with real ImageNet weights, recovered as a float network from torchvision's int8 TorchScript model.

See README.md in this folder for how the recovery works and how it was checked.
"""
from cortexbench.data import DatasetSpec, FileSpec
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelSpec

_ORIGIN = ("https://raw.githubusercontent.com/pytorch/ios-demo-app/b8f52b772b98a48f4d3bb14e8eb977724a66836b/"
           "PyTorchDemo/PyTorchDemo/ImageClassification/model/")

DATASET = DatasetSpec(
    identifier="mobilenet_v2_quantized",
    folder="models/mobilenet_v2_quantized",
    files=(
        FileSpec("mobilenet_quantized.pt", "2778381c5eb7639a2229bc39567cf644226e5aa3d3a1d46dfcee70b373738498",
                 3598958, _ORIGIN + "mobilenet_quantized.pt"),
        FileSpec("words.txt", "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2", 21675,
                 _ORIGIN + "words.txt"),
    ),
    description="torchvision's post-training-quantized (int8, QNNPACK) ImageNet MobileNetV2 as TorchScript, "
                "and the 1000 ImageNet labels",
    license="BSD-3-Clause (torchvision); ImageNet terms of use for the trained weights",
    citation="Sandler M et al. (2018). MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR.",
)

CITATION = DATASET.citation


def _build(**options):
    from .model import build_model

    return build_model(**options)


@hookimpl
def cortexbench_models():
    return [ModelSpec(
        identifier="mobilenet_v2",
        factory=_build,
        description="MobileNetV2 1.0, ImageNet-trained (torchvision weights, dequantized from int8); 20 layers",
        modalities=("image", "video"),
        family="mobilenet_v2",
        trained=True,
        citation=CITATION,
    ), ModelSpec(
        identifier="mobilenet_v2.untrained-seed0",
        factory=lambda **options: _untrained(0, **options),
        description="the same torchvision MobileNetV2, layers and preprocessing at random init (torch seed 0): "
                    "the control in which only the weights differ",
        modalities=("image", "video"),
        family="mobilenet_v2",
        trained=False,
        citation=CITATION,
    )]


def _untrained(seed: int, **options):
    from .model import build_untrained

    return build_untrained(seed, **options)


@hookimpl
def cortexbench_datasets():
    return [DATASET]
