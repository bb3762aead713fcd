"""Fixtures written in the exact published THINGS formats (small, with planted content)."""
from __future__ import annotations

import numpy as np
import pytest

PUBLISHED_HEADER = ("image1\timage2\timage3\tchoice\tRT\tnoise_ceiling\tsubject_id\tHIT_nr\ttrial_nr\tage\tgender\t"
                    "date\ttime\tdataset")


def write_concepts(path, ids, words, synonyms=None):
    """A ``things_concepts.tsv`` with the real 25-column header (only Word, uniqueID and synonyms filled)."""
    header = ["Word", "uniqueID", "Example image", "Bigram", "Percent_known", "Rank (combining COCA/concreteness)",
              "Concreteness (M)", "COCA word freq (online)", "COCA word freq", "COCA (dispersion)", "COCA (rank)",
              "BNC freq", "SUBTLEX freq", "Dominant Part of Speech", "Bottom-up Category (Human Raters)",
              "Top-down Category (WordNet)", "Top-down Category (manual selection)", "All Bottom-up Categories",
              "WordNet Synonyms", "WordNet ID", "Wordnet ID2", "Wordnet ID3", "Wordnet ID4",
              '"Definition (from WordNet, Google, or Wikipedia)"', "Number of word meanings in list"]
    lines = ["\t".join(header)]
    for i, (uid, word) in enumerate(zip(ids, words)):
        row = [""] * len(header)
        row[0], row[1] = word, uid
        row[18] = f'"{", ".join(synonyms[i])}"' if synonyms and synonyms[i] else word
        lines.append("\t".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_held_out(path, triplets, choice, subject):
    """VICE ``test_triplets.csv``: tab-separated, no header, 1-based objects and positions."""
    table = np.column_stack([np.asarray(triplets) + 1, np.asarray(choice) + 1, subject])
    np.savetxt(path, table, fmt="%d", delimiter="\t")
    return path


def write_published(path, triplets, choice, split, subject):
    """``triplets_large_final_correctednc_correctedorder.csv``: tab-separated with the 14-column header."""
    lines = [PUBLISHED_HEADER]
    for (a, b, c), ch, nc, s in zip(np.asarray(triplets) + 1, np.asarray(choice) + 1, split, subject):
        lines.append(f"{a}\t{b}\t{c}\t{ch}\t1234\t{nc}\t{s}\t17\t3\t31\tFemale\t2019-04-02\t10:11:12\t1")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def planted_responses():
    """Judgments with known counts: triplet (2, 5, 9) asked 4 times in different orders, plus singles."""
    triplets = np.array([[2, 5, 9], [9, 2, 5], [5, 9, 2], [2, 9, 5], [0, 1, 3], [4, 6, 8]])
    choice = np.array([0, 1, 2, 2, 1, 0])          # odd object: 2, 2, 2, 5, 1, 4
    return triplets, choice
