"""timm models: ``timm/<architecture>.untrained-seed<N>`` builds any timm architecture at seeded random init.

Identifiers resolve through a model family, so any architecture timm knows is available without a listing
entry; the registered list below is what ``cortexbench list models`` shows.
"""
from __future__ import annotations

import re

from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelFamily, ModelSpec

PREFIX = "timm/"
_UNTRAINED = re.compile(r"(?P<arch>[A-Za-z0-9_]+)\.untrained-seed(?P<seed>\d+)")
CITATION = "Wightman R (2019). PyTorch Image Models. https://github.com/huggingface/pytorch-image-models"

#: Untrained variants registered by default (listed; any other architecture resolves on demand).
LISTED_UNTRAINED = ("mobilenetv2_100",)


def untrained_spec(arch: str, seed: int) -> ModelSpec:
    def factory(**options):
        from .model import build_untrained

        return build_untrained(arch, seed, **options)

    return ModelSpec(
        identifier=f"{PREFIX}{arch}.untrained-seed{seed}",
        factory=factory,
        description=f"timm {arch} at random initialisation (torch seed {seed}); an untrained control",
        modalities=("image",),
        family="timm",
        trained=False,
        citation=CITATION,
    )


def resolve(identifier: str) -> ModelSpec | None:
    match = _UNTRAINED.fullmatch(identifier[len(PREFIX):])
    if match is None:
        return None
    return untrained_spec(match["arch"], int(match["seed"]))


@hookimpl
def cortexbench_models():
    return [untrained_spec(arch, 0) for arch in LISTED_UNTRAINED]


@hookimpl
def cortexbench_model_families():
    return [ModelFamily(PREFIX, resolve, "any timm architecture at seeded random init: "
                                         "timm/<architecture>.untrained-seed<N>")]
