"""Readers of the published THINGS files (fixtures in their exact formats), choice counts, splits and sampling."""
import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import KFold, train_test_split

from cortexbench.errors import DataError, InputError
from cortexbench.plugins.benchmarks.things_oddoneout import data
from cortexbench.plugins.benchmarks.things_oddoneout.human import load_human
from cortexbench.plugins.benchmarks.things_oddoneout.noise_ceiling import PUBLISHED_CEILING, loo_ceiling
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import (count_choices, holdout, kfold_indices,
                                                                      recovery_splits, sample_unique_triplets,
                                                                      triplet_keys, within)

from .conftest import write_concepts, write_held_out, write_published


def test_concepts_reader_keeps_order_ids_words_and_synonyms(tmp_path):
    path = write_concepts(tmp_path / "things_concepts.tsv", ["aardvark", "bat1", "bat2", "bike"],
                          ["aardvark", "bat", "bat", "bike"], [["aardvark", "ant_bear"], ["bat"], ["bat"],
                                                               ["bicycle", "bike", "wheel"]])
    concepts = data.read_concepts(path)
    assert concepts.unique_ids == ("aardvark", "bat1", "bat2", "bike")
    assert concepts.words == ("aardvark", "bat", "bat", "bike")
    assert concepts.synonyms[0] == ("aardvark", "ant bear") and "bicycle" in concepts.synonyms[3]
    stimuli = concepts.text_stimuli()
    assert stimuli.modality == "text" and stimuli.stimulus_ids == concepts.unique_ids and stimuli.items[1] == "bat"
    bad = tmp_path / "bad.tsv"
    bad.write_text("name\tid\nx\ty\n")
    with pytest.raises(DataError, match="Word.*uniqueID"):
        data.read_concepts(bad)


def test_real_concepts_are_the_1854_things_concepts(shared_data):
    concepts = data.load_concepts()
    assert len(concepts) == 1854 and concepts.unique_ids[0] == "aardvark"
    ids = (shared_data / "things" / "thingsdecisions" / "unique_id.csv").read_text().split()[1:]
    assert list(concepts.unique_ids) == ids                    # the order every embedding row follows
    bats = [uid for uid, word in zip(concepts.unique_ids, concepts.words) if word == "bat"]
    assert bats == ["bat1", "bat2"]                            # homonyms share a Word, never a uniqueID


def test_held_out_reader_converts_to_zero_based(tmp_path, planted_responses):
    triplets, choice = planted_responses
    path = write_held_out(tmp_path / "test_triplets.csv", triplets, choice, np.arange(len(choice)) + 100)
    responses = data.read_held_out_triplets(path, n_concepts=10)
    np.testing.assert_array_equal(responses.triplets, triplets)
    np.testing.assert_array_equal(responses.choice, choice)
    assert list(responses.subject) == [str(s) for s in np.arange(len(choice)) + 100]
    out_of_range = write_held_out(tmp_path / "bad.csv", triplets + 5, choice, np.zeros(len(choice), int))
    with pytest.raises(DataError, match="1..10"):
        data.read_held_out_triplets(out_of_range, n_concepts=10)


def test_published_reader_reads_the_osf_table(tmp_path, planted_responses):
    triplets, choice = planted_responses
    split = [2, 2, 2, 2, 0, 0]
    path = write_published(tmp_path / "triplets_large_final_correctednc_correctedorder.csv", triplets, choice, split,
                           ["s1", "s2", "s3", "s4", "s5", "s6"])
    responses = data.read_published_triplets(path, n_concepts=10)
    np.testing.assert_array_equal(responses.triplets, triplets)
    np.testing.assert_array_equal(responses.choice, choice)
    np.testing.assert_array_equal(responses.split, split)
    assert list(responses.subject) == ["s1", "s2", "s3", "s4", "s5", "s6"]
    broken = tmp_path / "broken.csv"
    broken.write_text("image1\timage2\timage3\tchoice\n1\t2\t3\t1\n")
    with pytest.raises(DataError, match="noise_ceiling"):
        data.read_published_triplets(broken, n_concepts=10)
    with pytest.raises(InputError, match="osf.io/f5rn6"):
        data.read_published_triplets(tmp_path / "absent.csv")


def test_choice_counts_merge_presentation_orders(planted_responses):
    counts = count_choices(*planted_responses)
    table = {tuple(t): list(c) for t, c in zip(counts.triplets.tolist(), counts.counts.tolist())}
    assert table == {(2, 5, 9): [3, 1, 0], (0, 1, 3): [0, 1, 0], (4, 6, 8): [1, 0, 0]}


def test_published_file_feeds_pool_ceiling_and_exclusions(tmp_path, planted_responses, shared_data):
    triplets, choice = planted_responses
    path = write_published(tmp_path / "t.csv", triplets, choice, [2, 2, 2, 2, 0, 0], list("abcdef"))
    human = load_human(1854, str(path))
    assert sorted(map(tuple, human.pool.triplets.tolist())) == [(0, 1, 3), (4, 6, 8)]      # noise_ceiling == 0
    assert human.ceiling == pytest.approx(loo_ceiling([[3, 1, 0]]))                        # from test set 2
    assert set(human.excluded.tolist()) == set(triplet_keys(triplets, 1854).tolist())
    no_repeats = write_published(tmp_path / "u.csv", triplets[4:], choice[4:], [2, 0], ["a", "b"])
    fallback = load_human(1854, str(no_repeats))
    assert fallback.ceiling == PUBLISHED_CEILING and "no repeated triplets" in fallback.ceiling_method


def test_image_folder_layouts(tmp_path):
    concepts = data.Concepts(("aardvark", "bat1"), ("aardvark", "bat"), ((), ()), "fixture")
    for name in ("aardvark_01b.jpg", "aardvark_02s.jpg"):
        (tmp_path / "aardvark").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "aardvark" / name)
    Image.new("RGB", (8, 8)).save(tmp_path / "bat1.png")
    stimuli = data.concept_images(tmp_path, concepts)
    assert stimuli.stimulus_ids == ("aardvark", "bat1") and stimuli.modality == "image"
    assert stimuli.items[0].name == "aardvark_01b.jpg"          # the odd-one-out ("b") image of the concept
    (tmp_path / "bat1.png").unlink()
    with pytest.raises(InputError, match="no image for 1 of 2 concepts.*bat1"):
        data.concept_images(tmp_path, concepts)


def test_splits_reproduce_scikit_learn():
    for seed in (0, 7, 42):
        ours = kfold_indices(1854, 3, shuffle=True, random_state=seed)   # the ridge metric's, shared
        theirs = list(KFold(3, shuffle=True, random_state=seed).split(np.arange(1854)))
        for (a, b), (c, d) in zip(ours, theirs):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)
        items = np.arange(1236) * 3
        for size in (371, 0.2):
            mine = holdout(items, size, seed)
            expected = train_test_split(items, test_size=size, random_state=seed)
            np.testing.assert_array_equal(mine[0], expected[0])
            np.testing.assert_array_equal(mine[1], expected[1])


def test_recovery_splits_have_the_reference_sizes():
    for split in recovery_splits(1854, 3, seed=5):
        assert (len(split.train), len(split.val), len(split.test)) == (865, 371, 618)
        assert not set(split.train) & set(split.val) and not set(split.val) & set(split.test)
        assert len(set(split.train) | set(split.val) | set(split.test)) == 1854


def test_sampled_triplets_are_unique_inside_and_never_human():
    rng = np.random.default_rng(0)
    concepts = np.arange(10, 40)
    human = np.array([[10, 11, 12], [13, 14, 15], [20, 30, 39]])
    excluded = np.unique(triplet_keys(human, 100))
    total = 30 * 29 * 28 // 6
    drawn = sample_unique_triplets(concepts, total - 3, rng, excluded, 100)   # every allowed triplet
    assert len(np.unique(triplet_keys(drawn, 100))) == total - 3
    assert within(drawn, concepts, 100).all() and (np.diff(drawn, axis=1) > 0).all()
    assert not np.isin(triplet_keys(drawn, 100), excluded).any()
    again = sample_unique_triplets(concepts, 50, np.random.default_rng(1), excluded, 100)
    np.testing.assert_array_equal(again, sample_unique_triplets(concepts, 50, np.random.default_rng(1), excluded, 100))
    with pytest.raises(InputError, match="cannot draw"):
        sample_unique_triplets(concepts, total - 2, rng, excluded, 100)
