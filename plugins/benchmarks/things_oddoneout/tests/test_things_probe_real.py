"""The probe benchmarks on the 20,000 real held-out THINGS judgments, checked against direct computations."""
import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold

from cortexbench.cli import main
from cortexbench.plugins.benchmarks.things_oddoneout.human import load_human
from cortexbench.plugins.benchmarks.things_oddoneout.noise_ceiling import loo_ceiling
from cortexbench.plugins.benchmarks.things_oddoneout.objective import Transform, TripletBatch, TripletObjective
from cortexbench.plugins.benchmarks.things_oddoneout.sequential import fit_one
from cortexbench.plugins.benchmarks.things_oddoneout.triplets import count_choices
from cortexbench.scorer import score


@pytest.fixture(scope="module")
def judgments(shared_data):
    table = np.loadtxt(shared_data / "things" / "vice" / "test_triplets.csv", dtype=int)
    return table[:, :3] - 1, table[:, 3] - 1


def test_vice_zero_shot_accuracy_on_the_real_triplets(judgments, shared_data, registry):
    triplets, choice = judgments
    W = np.load(shared_data / "things" / "vice" / "final_embedding.npy").astype(np.float64)
    S = W @ W.T
    i, j, k = triplets.T
    predicted = np.stack([S[j, k], S[i, k], S[i, j]], 1).argmax(1)
    expected = float((predicted == choice).mean())                 # SOURCE.md documents 63.57 %
    result = score("things/vice-42d", "things.oddoneout-zeroshot", registry=registry, device="cpu", progress=False)
    ds = result.assembly
    assert float(ds["accuracy"]) == pytest.approx(expected, abs=1e-12)
    assert float(ds["zero_shot_accuracy"].sel(layer="embedding")) == pytest.approx(expected, abs=1e-12)
    assert float(ds["n_judgments"]) == 20000
    assert float(ds["score"]) == pytest.approx(expected / float(ds["ceiling"]))
    assert float(ds["ci_low"]) < float(ds["score"]) < float(ds["ci_high"])
    assert ds["raw"].dims == ("layer", "fold") and result.path.is_file()


def test_cli_scores_and_stores_the_spose_embedding(registry, capsys):
    code = main(["score", "things/spose-14d", "things.oddoneout-zeroshot", "--registry", str(registry.root),
                 "--device", "cpu", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "things/spose-14d on things.oddoneout-zeroshot" in out and "0.6298" in out  # SOURCE.md 62.98 %


def test_fitted_diagonal_probe_equals_a_sequential_refit(judgments, registry):
    options = {"lambdas": [1e-3, 1.0], "inner_folds": 3, "dtype": "float64"}
    ds = score("things/spose-14d", "things.oddoneout-diagonal", registry=registry, device="cpu", progress=False,
               benchmark_options=options).assembly
    triplets, choice = judgments
    pool = count_choices(triplets, choice)
    features = torch.tensor(np.load(_spose14()), dtype=torch.float64)
    tested = []
    transform = Transform.make("diagonal", 14)
    objective = TripletObjective(features, transform)
    for fold, (train_c, test_c) in enumerate(KFold(3, shuffle=True, random_state=42).split(np.arange(1854))):
        inside = lambda concepts: np.isin(pool.triplets, concepts).all(1)
        train, test = pool.subset(inside(train_c)), pool.subset(inside(test_c))
        tested.append(test.counts)
        assert float(ds["test_total"].sel(fold=fold)) == test.n_responses
        lam = float(ds["chosen_lambda"].sel(layer="embedding", fold=fold))
        assert lam in options["lambdas"]
        data = TripletBatch.stack([train], torch.float64, "cpu")
        params, _ = fit_one(objective, data, 0, lam)
        z = features.numpy() * params.numpy()
        s = z @ z.T
        i, j, k = test.triplets.T
        predicted = np.stack([s[j, k], s[i, k], s[i, j]], 1).argmax(1)
        right = test.counts[np.arange(len(test)), predicted].sum()
        assert float(ds["test_correct"].sel(layer="embedding", fold=fold)) == pytest.approx(right, abs=1.0)
    accuracy = float(ds["accuracy"])
    assert 0.45 < accuracy < float(ds["ceiling"]) + 0.05 and ds.attrs["transform"] == "diagonal"
    # the ceiling is that of the tested triplets (all inside one concept fold), not of all 1000 triplets
    tested = np.concatenate(tested)
    assert float(ds["ceiling"]) == pytest.approx(loo_ceiling(tested), abs=1e-12)
    assert abs(float(ds["ceiling"]) - load_human(1854).ceiling) > 1e-3
    assert float(ds["score"]) == pytest.approx(accuracy / loo_ceiling(tested))
    assert float(ds["triplet_correct"].sum()) == pytest.approx(float(ds["test_correct"].sel(layer="embedding").sum()))
    assert int(ds["n_test_triplets"]) == len(tested) and float(ds["n_judgments"]) == tested.sum()
    assert float(ds["ci_low"]) < float(ds["score"]) < float(ds["ci_high"]) and float(ds["score_error"]) > 0
    assert np.isfinite(ds["val_accuracy"].values).all()


def _spose14():
    from cortexbench.data import resolve
    from cortexbench.plugins.benchmarks.things_oddoneout.dataset import SPOSE_14D, THINGS

    return resolve(THINGS, SPOSE_14D)


@pytest.mark.parametrize("model, options, layer", [
    ("glove/6B-50d", {"oov": "zero"}, "embedding"),
    ("hf/sentence-transformers/all-MiniLM-L6-v2", {}, "hidden_states.6"),
])
def test_text_models_read_the_concept_words(model, options, layer, judgments, registry):
    from cortexbench.activations import CachedCandidate
    from cortexbench.plugin_manager import get_plugin_manager
    from cortexbench.plugins.benchmarks.things_oddoneout.data import load_concepts

    ds = score(model, "things.oddoneout-zeroshot", registry=registry, device="cpu", progress=False,
               model_options=options, benchmark_options={"layers": [layer]}).assembly
    stimuli = load_concepts().text_stimuli()
    assert ds.attrs["stimulus_set_hash"] == stimuli.content_hash           # the 1854 concept words
    features = CachedCandidate(get_plugin_manager().create_model(model, **options)).activations(
        stimuli, [layer])[layer].values.astype(np.float64)
    S = features @ features.T
    triplets, choice = judgments
    i, j, k = triplets.T
    logits = np.stack([S[j, k], S[i, k], S[i, j]], 1)
    maxima = np.isclose(logits, logits.max(1, keepdims=True), rtol=1e-6, atol=1e-9)   # OOV words give exact ties
    expected = float((maxima[np.arange(len(choice)), choice] / maxima.sum(1)).mean())
    assert float(ds["accuracy"]) == pytest.approx(expected, abs=1e-5)
    assert 0.36 < expected < float(ds["ceiling"])                          # above chance, below people


def test_image_route_presents_one_image_per_concept(tmp_path, registry):
    from PIL import Image

    from cortexbench.plugins.benchmarks.things_oddoneout.data import load_concepts

    for n, uid in enumerate(load_concepts().unique_ids):               # the THINGS database layout
        (tmp_path / uid).mkdir()
        Image.new("RGB", (4, 4), (n % 256, n // 256, 0)).save(tmp_path / uid / f"{uid}_01b.png")
    by_image = score("things/spose-14d", "things.oddoneout-zeroshot", registry=registry, device="cpu", progress=False,
                     benchmark_options={"images": str(tmp_path)}, store=False).assembly
    by_word = score("things/spose-14d", "things.oddoneout-zeroshot", registry=registry, device="cpu", progress=False,
                    store=False).assembly
    assert by_image.attrs["stimulus_set"] == "things-concept-images"
    assert float(by_image["accuracy"]) == float(by_word["accuracy"])   # the embedding looks concepts up by uniqueID
