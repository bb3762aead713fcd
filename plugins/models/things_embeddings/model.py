"""A lookup-table "model": THINGS concept stimuli in, the concept's row of a human-derived embedding out.

How a stimulus finds its concept, in order:

1. its id is a THINGS ``uniqueID`` (how the THINGS benchmarks present concepts, as text or images);
2. its text is a concept name: a ``uniqueID`` (``_`` read as a space) or a ``Word`` (a homonym such as "bat" gives
   the mean of its concepts' rows), case-insensitive;
3. otherwise the text is read as a bag of concepts: the longest phrases that name a concept (``Word``,
   ``uniqueID`` or one of its WordNet synonyms from ``things_concepts.tsv``) are matched left to right, and the
   rows of all matched concepts are averaged ("a red bicycle" -> bike).

Text naming no THINGS concept is an error: the embedding exists for the 1854 concepts only.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cached_property

import numpy as np

from cortexbench.data import resolve
from cortexbench.errors import DataError, InputError
from cortexbench.interfaces import ActivationBatch, Layer, make_layers
from cortexbench.stimuli import StimulusSet

LAYER = "embedding"
_TOKEN_EDGES = re.compile(r"^[^\w]+|[^\w]+$")


def normalize(text: str) -> str:
    words = [_TOKEN_EDGES.sub("", w) for w in str(text).lower().replace("_", " ").split()]
    return " ".join(w for w in words if w)


class ConceptLookup:
    """Maps stimulus ids and texts to rows of the THINGS concept table."""

    def __init__(self, unique_ids: Sequence[str], words: Sequence[str], synonyms: Sequence[Sequence[str]]):
        self.by_id = {uid: i for i, uid in enumerate(unique_ids)}
        self.names: dict[str, list[int]] = {}
        self.synonyms: dict[str, list[int]] = {}
        for i, (uid, word) in enumerate(zip(unique_ids, words)):
            for name in {normalize(uid), normalize(word)}:
                self.names.setdefault(name, []).append(i)
            for synonym in synonyms[i]:
                self.synonyms.setdefault(normalize(synonym), []).append(i)
        self.longest = max(len(n.split()) for n in [*self.names, *self.synonyms])

    def phrase(self, text: str) -> list[int] | None:
        return self.names.get(text) or self.synonyms.get(text)

    def rows(self, stimulus_id: str, text: str | None) -> list[int]:
        if stimulus_id in self.by_id:
            return [self.by_id[stimulus_id]]
        if text is None:
            raise InputError(f"stimulus {stimulus_id!r} is not a THINGS concept: image stimuli must have THINGS "
                             "uniqueIDs as ids (e.g. 'aardvark', 'bat1')")
        words = normalize(text).split()
        exact = self.names.get(" ".join(words))
        if exact:
            return sorted(set(exact))
        found: list[int] = []
        start = 0
        while start < len(words):
            for size in range(min(self.longest, len(words) - start), 0, -1):
                match = self.phrase(" ".join(words[start:start + size]))
                if match:
                    found.extend(match)
                    start += size
                    break
            else:
                start += 1
        if not found:
            raise InputError(f"stimulus {stimulus_id!r} ({text!r}) names no THINGS concept: use THINGS uniqueIDs as "
                             "stimulus ids, or text containing a concept name or WordNet synonym")
        return sorted(set(found))


class ThingsEmbedding:
    """Implements :class:`cortexbench.interfaces.Model` for one embedding file of dataset ``things``."""

    def __init__(self, identifier: str, path: str):
        from cortexbench.plugins.benchmarks.things_oddoneout.dataset import THINGS

        self.identifier = identifier
        self.modalities = frozenset({"text", "image"})
        self._dataset, self._path = THINGS, path

    @property
    def layers(self) -> tuple[Layer, ...]:
        return make_layers([LAYER], "NC")

    @property
    def region_layer_map(self) -> dict[str, tuple[str, ...]]:
        return {}

    def fingerprint(self) -> dict[str, str]:
        return {"model": self.identifier, "weights": self._dataset.file(self._path).sha256,
                "lookup": "uniqueID>name>bag-of-concepts v1", "class": type(self).__qualname__}

    @cached_property
    def embedding(self) -> np.ndarray:
        from cortexbench.plugins.benchmarks.things_oddoneout.data import N_CONCEPTS

        path = resolve(self._dataset, self._path)
        values = np.load(path, allow_pickle=False).astype(np.float32)
        if values.ndim != 2 or values.shape[0] != N_CONCEPTS or not np.isfinite(values).all():
            raise DataError(f"{path}: expected a finite ({N_CONCEPTS}, d) embedding, got {values.shape}")
        return values

    @cached_property
    def lookup(self) -> ConceptLookup:
        from cortexbench.plugins.benchmarks.things_oddoneout.data import load_concepts

        concepts = load_concepts()
        return ConceptLookup(concepts.unique_ids, concepts.words, concepts.synonyms)

    def rows(self, stimuli: StimulusSet) -> list[list[int]]:
        texts = stimuli.items if stimuli.modality == "text" else [None] * len(stimuli)
        return [self.lookup.rows(sid, text) for sid, text in zip(stimuli.stimulus_ids, texts)]

    def iter_activations(self, stimuli: StimulusSet, layers: Sequence[str], *, pooling: str = "avg",
                         device: str = "cpu", batch_size: int = 64, precision: str = "fp32"
                         ) -> Iterator[ActivationBatch]:
        if stimuli.modality not in self.modalities:
            raise InputError(f"model {self.identifier!r} accepts {sorted(self.modalities)} stimuli, "
                             f"stimulus set {stimuli.identifier!r} is {stimuli.modality}")
        unknown = [name for name in layers if name != LAYER]
        if unknown or not layers:
            raise InputError(f"model {self.identifier!r} has one layer, {LAYER!r}; asked for {list(layers)}")
        rows = self.rows(stimuli)
        table = self.embedding
        for start in range(0, len(rows), max(1, batch_size)):
            block = np.stack([table[r].mean(axis=0) for r in rows[start:start + batch_size]])
            yield ActivationBatch(start, {LAYER: block})
