"""Cross-validated prediction with fold models and their averaging ensemble (instrclf.predict)."""

import keras
import numpy as np
import pandas as pd
import pytest
from synthetic import TINY_PARAMS, make_features_dir, tiny_card, tiny_settings

from instrclf import data, layout, models, predict, settings
from instrclf.card import card_path
from instrclf.errors import DataError
from instrclf.features import frontend
from instrclf import backends

LABELS = ["Fl", "Tbn", "Vn"]
P = layout.probability_columns(LABELS)
CLEAN, FEATURES = tiny_settings()
FOLDS = (0, 1)


def save_fold_model(path, fold, *, seed, name="baseline", **card_changes):
    """An untrained fold model (its own random weights) saved with its card."""
    keras.utils.set_random_seed(seed)
    front = frontend(clean=CLEAN, features=FEATURES)
    back = backends.build(
        name, config=settings.model_config(TINY_PARAMS, name), input_shape=front.output_shape[1:],
        n_classes=len(LABELS), fold=fold,
    )
    card = tiny_card(name, **({"labels": LABELS, "test_folds": [fold]} | card_changes))
    models.save(models.assemble(front, [back], name=name), path, card=card)
    return path


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    return make_features_dir(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def clean_dir(features_dir):
    return features_dir.parent / "clean"


@pytest.fixture(scope="module")
def fold_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {f: save_fold_model(folder / f"baseline-{f}.keras", f, seed=10 + f) for f in FOLDS}


@pytest.fixture(scope="module")
def result(features_dir, fold_paths):
    return predict.run("baseline", paths=fold_paths, features_dir=features_dir, unseen_library="B")


def note_probs(model, clean_dir, windows):
    """Each note's mean window probability by ``model`` on raw audio: {Path: probs}."""
    x = data.load_windows(clean_dir, windows, n_samples=CLEAN.window_length)
    p = model.predict(x, verbose=0)
    return {path: p[(windows["Path"] == path).to_numpy()].mean(axis=0) for path in sorted(set(windows["Path"]))}


@pytest.fixture(scope="module")
def independent(clean_dir, fold_paths):
    """Every fold model's per-note probabilities on every note, computed with plain Keras from raw audio."""
    index = layout.read_index(clean_dir)
    return {f: note_probs(keras.models.load_model(p), clean_dir, index) for f, p in fold_paths.items()}


def test_each_test_note_is_predicted_once_by_its_own_fold_model(clean_dir, result, independent):
    index = layout.read_index(clean_dir)
    test = result["predictions"].query("set == 'test'")
    expected = index[(index["library"] == "A") & index["fold"].isin(FOLDS)]
    assert sorted(test["Path"]) == sorted(set(expected["Path"]))  # each once, nothing of library B
    assert set(test["library"]) == {"A"}
    differs = 0
    for row in test.itertuples():
        own, other = independent[row.fold][row.Path], independent[1 - row.fold][row.Path]
        np.testing.assert_allclose(test.loc[row.Index, P].to_numpy(float), own, rtol=1e-5, atol=1e-6)
        differs += not np.allclose(own, other, rtol=1e-3)
        assert row.n_windows == 2 and row.predicted == LABELS[int(np.argmax(own))]
    assert differs == len(test)  # the fold models disagree, so the check above tells them apart


def test_unseen_library_is_predicted_by_the_mean_of_the_fold_models(clean_dir, result, independent):
    index = layout.read_index(clean_dir)
    unseen = result["predictions"].query("set == 'unseen'")
    assert sorted(unseen["Path"]) == sorted(set(index.loc[index["library"] == "B", "Path"]))
    assert set(unseen["fold"]) == set(range(5))  # every fold of the unseen library
    for row in unseen.itertuples():
        mean = np.mean([independent[f][row.Path] for f in FOLDS], axis=0)
        np.testing.assert_allclose(unseen.loc[row.Index, P].to_numpy(float), mean, rtol=1e-5, atol=1e-6)
    # The ensemble handed back computes that mean from raw audio.
    windows = index[index["library"] == "B"].reset_index(drop=True)
    for path, probs in note_probs(result["model"], clean_dir, windows).items():
        np.testing.assert_allclose(probs, np.mean([independent[f][path] for f in FOLDS], axis=0), rtol=1e-5, atol=1e-6)
    assert result["card"].test_folds == list(FOLDS)


def test_shift_average_scores_each_window_over_its_shifted_spectra_in_every_fold_and_the_ensemble(
        features_dir, clean_dir, fold_paths, independent):
    """predict.shift_average = 1: the fold figures and the user model both average each window over its
    spectrum moved by -1..1 bands (the test notes are not those of the plain run, so the knob is not ignored)."""
    shifted = predict.run("baseline", paths=fold_paths, features_dir=features_dir, unseen_library="B", shift_average=1)
    assert models.shift_average_of(shifted["model"]) == 1
    index = layout.read_index(clean_dir)
    own = {}
    for fold, path in fold_paths.items():
        loaded = keras.models.load_model(path)
        viewed = models.assemble(loaded.get_layer("frontend"), models.back_ends(loaded), name="viewed", shift_average=1)
        own[fold] = note_probs(viewed, clean_dir, index)
    test = shifted["predictions"].query("set == 'test'")
    differs = 0
    for row in test.itertuples():
        np.testing.assert_allclose(test.loc[row.Index, P].to_numpy(float), own[row.fold][row.Path], rtol=1e-5, atol=1e-6)
        differs += not np.allclose(own[row.fold][row.Path], independent[row.fold][row.Path], rtol=1e-3)
    assert differs > len(test) // 2
    unseen = shifted["predictions"].query("set == 'unseen'")
    by_model = note_probs(shifted["model"], clean_dir, index[index["library"] == "B"].reset_index(drop=True))
    for row in unseen.itertuples():
        mean = np.mean([own[f][row.Path] for f in FOLDS], axis=0)
        np.testing.assert_allclose(unseen.loc[row.Index, P].to_numpy(float), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(by_model[row.Path], mean, rtol=1e-5, atol=1e-6)


def test_the_ensemble_saves_and_reloads(tmp_path, clean_dir, result):
    path = tmp_path / "baseline.keras"
    models.save(result["model"], path, card=result["card"])
    loaded, card = models.load(path)
    assert card == result["card"] and card.test_folds == [0, 1]
    x = data.load_windows(clean_dir, layout.read_index(clean_dir).head(4), n_samples=CLEAN.window_length)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), result["model"].predict(x, verbose=0), rtol=1e-6)


def saved_optimizer_state(path) -> list:
    """The names in a saved .keras archive's weights file that hold optimizer state (at any depth)."""
    import io
    import zipfile

    import h5py

    names = []
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        weights.visit(names.append)
    return [name for name in names if "optimizer" in name.split("/")]


def test_the_ensemble_leaves_the_fold_models_optimizer_state_behind(tmp_path, features_dir):
    """Training compiles each back end and saves it inside its fold model with Adam's moments;
    the user model made of those back ends is for inference and carries none of it."""
    paths = {}
    for fold in FOLDS:
        keras.utils.set_random_seed(30 + fold)
        front = frontend(clean=CLEAN, features=FEATURES)
        back = backends.build("baseline", config=settings.model_config(TINY_PARAMS, "baseline"),
                              input_shape=front.output_shape[1:], n_classes=len(LABELS), fold=fold)
        back.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        back.optimizer.build(back.trainable_variables)
        paths[fold] = tmp_path / f"fold-{fold}.keras"
        models.save(models.assemble(front, [back], name="baseline"), paths[fold],
                    card=tiny_card("baseline", labels=LABELS, test_folds=[fold]))
        assert saved_optimizer_state(paths[fold])
    out = predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")
    models.save(out["model"], tmp_path / "user.keras", card=out["card"])
    assert saved_optimizer_state(tmp_path / "user.keras") == []


def test_figures_per_fold_and_for_the_ensemble(result):
    predictions, results = result["predictions"], result["results"]
    assert set(results["folds"]) == {"0", "1"} and results["unseen_library"] == "B"
    figure_keys = {"file_accuracy", "window_accuracy", "macro_f1", "roc_auc_macro", "roc_auc_micro", "n_files", "n_windows"}
    for fold, figures in results["folds"].items():
        assert set(figures) == figure_keys | {f"unseen_{k}" for k in figure_keys}
        mine = predictions[(predictions["set"] == "test") & (predictions["fold"] == int(fold))]
        assert figures["n_files"] == len(mine) == 6 and figures["n_windows"] == 12
        assert figures["file_accuracy"] == pytest.approx(np.mean(mine["label"] == mine["predicted"]))
        assert figures["unseen_n_files"] == 30
    assert set(results["ensemble"]) == {f"unseen_{k}" for k in figure_keys}
    unseen = predictions[predictions["set"] == "unseen"]
    assert results["ensemble"]["unseen_file_accuracy"] == pytest.approx(np.mean(unseen["label"] == unseen["predicted"]))


def test_one_library_predicts_test_folds_only_with_a_note(tmp_path):
    features_dir = make_features_dir(tmp_path, libraries=("default",))
    paths = {f: save_fold_model(tmp_path / f"m{f}.keras", f, seed=f, unseen_library=None) for f in FOLDS}
    out = predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")
    assert set(out["predictions"]["set"]) == {"test"} and len(out["predictions"]) == 12
    assert "one library (default)" in out["results"]["unseen_note"]
    assert "ensemble" not in out["results"] and out["results"]["unseen_library"] is None
    assert not any(k.startswith("unseen_") for k in out["results"]["folds"]["0"])


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clean": CLEAN.model_copy(update={"threshold_db": -50.0})}, "was trained with other settings than"),
        ({"features": FEATURES.model_copy(update={"hop_length": 100})}, "was trained with other settings than"),
        ({"labels": ["Fl", "Tbn", "Vc"]}, "was trained with other settings than"),
        ({"seed": 8}, "was trained with other settings than"),
        ({"config": {**TINY_PARAMS["models"]["baseline"], "l2": 0.5}}, "was trained with other settings than"),
        ({"test_folds": [0]}, r"baseline-1.keras: its card says test fold\(s\) \[0\], expected \[1\]"),
    ],
)
def test_fold_models_that_disagree_are_refused(tmp_path, features_dir, fold_paths, changes, match):
    paths = dict(fold_paths)
    paths[1] = tmp_path / "baseline-1.keras"
    paths[1].write_bytes(fold_paths[1].read_bytes())
    card = tiny_card("baseline", labels=LABELS, test_folds=[1]).model_copy(update=changes)
    card_path(paths[1]).write_text(card.model_dump_json(), encoding="utf-8")
    with pytest.raises(DataError, match=match):
        predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")


def test_an_ensemble_card_is_not_taken_for_one_fold_model(tmp_path, features_dir, fold_paths):
    """A model whose card names folds [0, 1] (the ensemble's) given as fold 1's model is refused, not used as fold 1."""
    paths = dict(fold_paths)
    paths[1] = tmp_path / "baseline-1.keras"
    paths[1].write_bytes(fold_paths[1].read_bytes())
    card = tiny_card("baseline", labels=LABELS, test_folds=[0, 1])
    card_path(paths[1]).write_text(card.model_dump_json(), encoding="utf-8")
    with pytest.raises(DataError, match=r"baseline-1.keras: its card says test fold\(s\) \[0, 1\], expected \[1\]"):
        predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")


def test_labels_other_than_the_datas_are_refused(tmp_path, features_dir):
    paths = {f: save_fold_model(tmp_path / f"m{f}.keras", f, seed=f, labels=["Fl", "Ob", "Vn"]) for f in FOLDS}
    with pytest.raises(DataError, match=r"labels \['Fl', 'Ob', 'Vn'\] differ from the clean data's \['Fl', 'Tbn', 'Vn'\]"):
        predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")


@pytest.mark.parametrize("unseen_library", [None, "A"])
def test_another_unseen_library_than_the_models_was_trained_without_is_refused(features_dir, fold_paths, unseen_library):
    with pytest.raises(DataError, match=f"trained without library 'B', not {unseen_library!r}: retrain"):
        predict.run("baseline", paths=fold_paths, features_dir=features_dir, unseen_library=unseen_library)


def test_features_made_with_other_settings_than_the_models_are_refused(tmp_path, fold_paths):
    other = TINY_PARAMS | {"features": TINY_PARAMS["features"] | {"n_mels": 16}}
    features_dir = make_features_dir(tmp_path, params=other)
    with pytest.raises(DataError, match=r"features\.json: the spectrograms were made with .*dvc repro features"):
        predict.run("baseline", paths=fold_paths, features_dir=features_dir, unseen_library="B")


# --------------------------------------------------------------------------- inference mode


@pytest.fixture(scope="module")
def dropout_paths(tmp_path_factory):
    """conv1d fold models with half their features dropped in training mode: training=True would show."""
    params = TINY_PARAMS | {"models": TINY_PARAMS["models"] | {"conv1d": TINY_PARAMS["models"]["conv1d"] | {"dropout": 0.5}}}
    folder = tmp_path_factory.mktemp("dropout")
    paths = {}
    for fold in FOLDS:
        keras.utils.set_random_seed(20 + fold)
        front = frontend(clean=CLEAN, features=FEATURES)
        back = backends.build("conv1d", config=settings.model_config(params, "conv1d"), input_shape=front.output_shape[1:],
                              n_classes=len(LABELS), fold=fold)
        paths[fold] = folder / f"conv1d-{fold}.keras"
        card = tiny_card("conv1d", labels=LABELS, test_folds=[fold], params=params)
        models.save(models.assemble(front, [back], name="conv1d"), paths[fold], card=card)
    return paths


def test_predictions_are_the_models_in_inference_mode_and_repeat_exactly(clean_dir, features_dir, dropout_paths):
    index = layout.read_index(clean_dir)
    x = data.load_windows(clean_dir, index, n_samples=CLEAN.window_length)
    reference = {}
    for fold, path in dropout_paths.items():
        model = keras.models.load_model(path)
        inference = np.asarray(model(x, training=False))
        assert not np.allclose(np.asarray(model(x, training=True)), inference, atol=1e-4)  # dropout is really there
        reference[fold] = {p: inference[(index["Path"] == p).to_numpy()].mean(axis=0) for p in sorted(set(index["Path"]))}
    first = predict.run("conv1d", paths=dropout_paths, features_dir=features_dir, unseen_library="B")
    again = predict.run("conv1d", paths=dropout_paths, features_dir=features_dir, unseen_library="B")
    pd.testing.assert_frame_equal(first["predictions"], again["predictions"], check_exact=True)
    assert first["results"] == again["results"]
    for row in first["predictions"].itertuples():
        got = first["predictions"].loc[row.Index, P].to_numpy(float)
        if row.set == "test":
            expected = reference[row.fold][row.Path]
        else:
            expected = np.mean([reference[f][row.Path] for f in FOLDS], axis=0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_models_whose_labels_are_in_another_order_are_refused(tmp_path, features_dir):
    """The same classes in another order: output k of the model is not the data's class k, so every column would be misnamed."""
    paths = {f: save_fold_model(tmp_path / f"m{f}.keras", f, seed=f, labels=["Vn", "Tbn", "Fl"]) for f in FOLDS}
    with pytest.raises(DataError, match=r"labels \['Vn', 'Tbn', 'Fl'\] differ from the clean data's \['Fl', 'Tbn', 'Vn'\]"):
        predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")


# Mutation run (benchmarks/mutation.py): what its survivors asked for.
# The checks above on the unseen library read the module-scoped ``result``, which mutmut
# credits to the first test only; this one calls predict.run itself.


def test_a_direct_run_predicts_the_unseen_library_and_reports_both_sets_per_fold(clean_dir, features_dir, fold_paths, independent):
    out = predict.run("baseline", paths=fold_paths, features_dir=features_dir, unseen_library="B")
    predictions, results = out["predictions"], out["results"]
    assert (predictions["set"] == "test").sum() == 12 and (predictions["set"] == "unseen").sum() == 30
    assert set(predictions.loc[predictions["set"] == "unseen", "library"]) == {"B"}
    for figures in results["folds"].values():
        assert figures["n_files"] == 6 and figures["unseen_n_files"] == 30
        assert 0.0 <= figures["file_accuracy"] <= 1.0 and 0.0 <= figures["unseen_file_accuracy"] <= 1.0
    assert results["ensemble"]["unseen_n_files"] == 30 and "unseen_note" not in results
    unseen = predictions[predictions["set"] == "unseen"]
    assert results["ensemble"]["unseen_file_accuracy"] == pytest.approx(np.mean(unseen["label"] == unseen["predicted"]))
    # The ensemble handed back: named after its architecture, its card naming both folds, its output their mean.
    assert out["model"].name == "baseline" and out["card"].test_folds == [0, 1]
    assert out["card"] == tiny_card("baseline", labels=LABELS, test_folds=[0, 1])
    index = layout.read_index(clean_dir)
    windows = index[index["Path"].isin(sorted(set(index.loc[index["library"] == "B", "Path"]))[:2])].reset_index(drop=True)
    for path, probs in note_probs(out["model"], clean_dir, windows).items():
        np.testing.assert_allclose(probs, np.mean([independent[f][path] for f in FOLDS], axis=0), rtol=1e-5, atol=1e-6)


def test_models_trained_at_a_colour_reference_see_every_library_brought_to_it(tmp_path, features_dir):
    """Test folds and the unseen library shifted to the card's reference (the unseen one from its own mean);
    the ensemble's ``unseen_alone_*`` figures are the unshifted notes'."""
    from instrclf import colour, evaluate
    from instrclf.features import Features

    reference = np.linspace(-60.0, -30.0, FEATURES.n_mels)
    paths = {f: save_fold_model(tmp_path / f"baseline-{f}.keras", f, seed=10 + f, colour_degree=2,
                                colour_reference=reference.tolist()) for f in FOLDS}
    out = predict.run("baseline", paths=paths, features_dir=features_dir, unseen_library="B")
    cache = Features(features_dir, clean=CLEAN, features=FEATURES)
    shifts = colour.shifts(cache.library_spectra(), degree=2, target=reference)
    assert np.abs(shifts["A"] - shifts["B"]).max() > 1e-3
    backs = {f: models.load(p)[0].get_layer(backends.backend_name("baseline", f)) for f, p in paths.items()}

    def probs(fold, rows, shifted=True):
        x = cache.take(rows)
        if shifted:
            x = x + np.stack([shifts[lib] for lib in rows["library"]])[:, None, :, None]
        return np.asarray(backs[fold](x, training=False))

    index = cache.index
    test = out["predictions"].query("set == 'test' and fold == 0")
    rows = index[(index["library"] == "A") & (index["fold"] == 0)]
    expected = evaluate.aggregate(rows, probs(0, rows), labels=LABELS, subset="test")
    np.testing.assert_allclose(test[P].to_numpy(float), expected[P].to_numpy(float), rtol=1e-5, atol=1e-6)
    unseen = index[index["library"] == "B"]
    shifted = np.mean([probs(f, unseen) for f in FOLDS], axis=0)
    alone = np.mean([probs(f, unseen, shifted=False) for f in FOLDS], axis=0)
    got = out["predictions"].query("set == 'unseen'")
    want = evaluate.aggregate(unseen, shifted, labels=LABELS, subset="unseen")
    np.testing.assert_allclose(got[P].to_numpy(float), want[P].to_numpy(float), rtol=1e-5, atol=1e-6)
    ensemble = out["results"]["ensemble"]
    alone_notes = evaluate.aggregate(unseen, alone, labels=LABELS, subset="unseen")
    assert ensemble["unseen_alone_file_accuracy"] == pytest.approx(np.mean(alone_notes["label"] == alone_notes["predicted"]))
    assert not np.allclose(shifted, alone, atol=1e-4)  # the shift changes what the models say
    assert (out["card"].colour_degree, out["card"].colour_reference) == (2, models.load(paths[0])[1].colour_reference)
