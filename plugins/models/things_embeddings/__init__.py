"""Human-derived THINGS concept embeddings as reference "models" (one layer, ``embedding``).

* ``things/vice-42d``: VICE (Muttenthaler et al. 2022), 42 non-negative dimensions learned from THINGS triplets;
* ``things/spose-14d`` and ``things/spose-82d``: SPoSE-style embeddings re-fitted on the THINGS triplets by
  Demircan et al. (2022).

They take THINGS concept stimuli (ids = THINGS uniqueIDs, text or images) and return the concept's embedding row,
so odd-one-out benchmarks can score and recover them like any network. The files are declared by the
``things_oddoneout`` benchmark plugin (dataset ``things``).
"""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import ModelSpec

#: identifier -> (file in dataset "things", dimensions, description, citation)
EMBEDDINGS = {
    "things/vice-42d": (
        "vice/final_embedding.npy", 42,
        "VICE 42-d THINGS concept embedding learned from human odd-one-out triplets (a human reference model)",
        "Muttenthaler L, Zheng CY, McClure P, Vandermeulen RA, Hebart MN, Pereira F (2022). VICE: Variational "
        "Interpretable Concept Embeddings. NeurIPS 35."),
    "things/spose-14d": (
        "thingsdecisions/spose_embedding_14d_sorted.npy", 14,
        "SPoSE-style 14-d THINGS concept embedding re-fitted on human triplets (a human reference model)",
        "Demircan C et al. (2022). Decision-making with naturalistic options. CogSci; Hebart MN et al. (2020) "
        "Nat Hum Behav 4:1173-1185."),
    "things/spose-82d": (
        "thingsdecisions/spose_embedding_82d_sorted.npy", 82,
        "SPoSE-style 82-d THINGS concept embedding re-fitted on human triplets (a human reference model)",
        "Demircan C et al. (2022). Decision-making with naturalistic options. CogSci; Hebart MN et al. (2020) "
        "Nat Hum Behav 4:1173-1185."),
}


def _factory(identifier: str):
    def factory(**options):
        from .model import ThingsEmbedding

        return ThingsEmbedding(identifier, EMBEDDINGS[identifier][0], **options)

    return factory


@hookimpl
def cortexbench_models():
    return [ModelSpec(identifier=identifier, factory=_factory(identifier), description=description,
                      modalities=("text", "image"), family="things", trained=True, citation=citation)
            for identifier, (_, _, description, citation) in EMBEDDINGS.items()]
