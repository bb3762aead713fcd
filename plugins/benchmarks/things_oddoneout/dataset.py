"""Declaration of the THINGS files held in the mirror (``things/``): concepts, held-out triplets, embeddings.

Kept in its own light module (only :mod:`cortexbench.data`) so that the THINGS embedding models plugin can refer to
the same declaration without registering it twice.
"""
from cortexbench.data import DatasetSpec, FileSpec

_VICE = "https://raw.githubusercontent.com/LukasMut/VICE/"
_VICE_HEAD = _VICE + "5f80103ef4c9eb29477c4cadb1c9c54476d59e97/"
_VICE_OLD = _VICE + "f484c1446459c12c15deb2df1476f53969ad6f4d/"
_DECISIONS = ("https://raw.githubusercontent.com/candemircan/THINGSDecisions/"
              "7d2829eaa82691a5a167ae522e54102fbcc5978a/data/")

CONCEPTS = "vice/things_concepts.tsv"
HELD_OUT_TRIPLETS = "vice/test_triplets.csv"
VICE_EMBEDDING = "vice/final_embedding.npy"
SPOSE_14D = "thingsdecisions/spose_embedding_14d_sorted.npy"
SPOSE_82D = "thingsdecisions/spose_embedding_82d_sorted.npy"

THINGS = DatasetSpec(
    identifier="things",
    files=(
        FileSpec(CONCEPTS, "f6eb4ec6fcad61e50a746bee820f98d1595fe655e9e210a9a407e9a17fd8cee4", 497467,
                 _VICE_HEAD + "data/files/things_concepts.tsv"),
        FileSpec("vice/item_names.tsv", "03dbe77972f9466ff8baa0da604d9f5104f677bf77cc602faebfa03a290fb51c", 132481,
                 _VICE_HEAD + "data/files/item_names.tsv"),
        FileSpec(HELD_OUT_TRIPLETS, "f2593378408f54fb047b2f9be040e2773be8f24118bc171d46c2c6a6da79afd4", 376170,
                 _VICE_OLD + "data/test_triplets.csv"),
        FileSpec("vice/category_mat_manual.tsv", "9f4f9a4626f23064dad9a7547ffa1e3a0a6b1fe23281d74cb394ee0367f53af4",
                 100398, _VICE_OLD + "data/category_mat_manual.tsv"),
        FileSpec(VICE_EMBEDDING, "6c596ec9fe6e135e3fd32207d4d1d5eb004e3cef3810d5cb40474b1996d5392f", 311600,
                 _VICE_HEAD + "embeddings/things/final_embedding.npy"),
        FileSpec(SPOSE_14D, "8ba4e16f9d0f339b9553d83d086e82cdce1376007261b7fdbef86358f3678f33", 103952,
                 _DECISIONS + "spose_embedding_14d_sorted.npy"),
        FileSpec(SPOSE_82D, "50aadf88dc37bc48e46ab8a59db3ad7591dcb461da09a9a436d4289f5cc54856", 608240,
                 _DECISIONS + "spose_embedding_82d_sorted.npy"),
        FileSpec("thingsdecisions/unique_id.csv", "9dc74513d9365849d078b20bcb83159e0a76a030346b805279de91920f91290a",
                 15204, _DECISIONS + "unique_id.csv"),
    ),
    description="THINGS: 1854 concepts, 20,000 held-out odd-one-out judgments (1000 triplets x ~20 raters), "
                "VICE 42-d and SPoSE-style 14-d/82-d human-derived embeddings",
    license="VICE files GPL-3.0; THINGS metadata CC-BY; THINGSDecisions embeddings research use (no license)",
    citation="Hebart MN et al. (2019) THINGS, PLoS ONE 14:e0223792; Hebart MN et al. (2020) Nat Hum Behav "
             "4:1173-1185; Muttenthaler L et al. (2022) VICE, NeurIPS 35; Demircan C et al. (2022) CogSci.",
)
