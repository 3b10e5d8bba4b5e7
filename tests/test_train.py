"""Training: seeding, the schedule, early stopping and what train.run trains on (instrclf.train)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from synthetic import TINY_PARAMS, make_features_dir, tiny_settings

from dataclasses import replace

from instrclf import backends, data, layout, settings, train
from instrclf.errors import ParameterError
from instrclf.settings import TrainingJob

ROOT = Path(__file__).resolve().parents[1]
CLEAN, FEATURES = tiny_settings()


def model_config(name="baseline", **changes):
    return settings.MODEL_CONFIGS[name].from_params(TINY_PARAMS["models"][name] | changes)


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    return make_features_dir(tmp_path_factory.mktemp("data"))


def job(name="baseline", *, seed=7, test_fold=0, **changes) -> TrainingJob:
    """The tiny project's job of ``train@<name>-<test_fold>``, with some fields changed."""
    if "augment" in changes:
        changes["augment"] = settings.AugmentSettings.from_params(changes["augment"])
    return replace(TrainingJob.from_params(TINY_PARAMS, model=name, fold=test_fold), seed=seed, **changes)


def run(features_dir, name="baseline", *, seed=7, test_fold=0, **changes):
    return train.run(job(name, seed=seed, test_fold=test_fold, **changes), features_dir=features_dir)


def back_end_weights(model, name, fold=0):
    return model.get_layer(backends.backend_name(name, fold)).get_weights()


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", ["conv1d", "lstm"])
def test_training_is_reproducible_from_the_seed(features_dir, name):
    """Two runs on CPU with the same seed (dropout, shuffling, augmentation): identical weights and figures."""
    augment = TINY_PARAMS["train"]["augment"] | {"eq_db": 3.0, "mel_shift": 1}
    (m1, card1, fig1), (m2, card2, fig2) = run(features_dir, name, augment=augment), run(features_dir, name, augment=augment)
    assert card1 == card2
    for key in ("best_val_accuracy", "best_epoch", "epochs_run", "n_train_windows", "n_params"):
        assert fig1[key] == fig2[key]
    for w1, w2 in zip(back_end_weights(m1, name), back_end_weights(m2, name), strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_a_different_seed_gives_different_weights(features_dir):
    a, card_a, _ = run(features_dir, seed=7)
    b, card_b, _ = run(features_dir, seed=8)
    assert (card_a.seed, card_b.seed) == (7, 8)
    assert not np.array_equal(back_end_weights(a, "baseline")[-2], back_end_weights(b, "baseline")[-2])


def test_dataset_shuffles_by_seed_and_reshuffles_each_epoch():
    x = np.arange(32, dtype="float32")[:, None]
    y = np.arange(32, dtype="int32")

    def epochs(ds, n=2):
        return [np.concatenate([b[1].numpy() for b in ds]) for _ in range(n)]

    a1, a2 = epochs(train.dataset(x, y, batch_size=5, seed=1))
    b1, b2 = epochs(train.dataset(x, y, batch_size=5, seed=1))
    c1, _ = epochs(train.dataset(x, y, batch_size=5, seed=2))
    assert sorted(a1) == list(range(32))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # a new order every epoch
    assert not np.array_equal(a1, c1)  # the seed decides the order
    np.testing.assert_array_equal(epochs(train.dataset(x, y, batch_size=5), 1)[0], y)  # validation: never shuffled


def test_the_shuffle_seed_changes_the_trained_weights():
    """Same initial weights and same global seed; only the batch order's seed differs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=40).astype("int32")
    keras.utils.set_random_seed(0)
    back = backends.build("baseline", config=settings.model_config(TINY_PARAMS, "baseline"), input_shape=(6, 8, 1),
                          n_classes=3, fold=0)
    start = back.get_weights()
    trained = {}
    for key, shuffle_seed in (("a", 1), ("a again", 1), ("b", 2)):
        train.seed_everything(0)
        back.set_weights(start)
        train.compile_model(back, rate=0.05)
        back.fit(train.dataset(x, y, batch_size=4, seed=shuffle_seed), epochs=2, verbose=0)
        trained[key] = back.get_weights()
    for w1, w2 in zip(trained["a"], trained["a again"], strict=True):
        np.testing.assert_array_equal(w1, w2)
    assert not np.array_equal(trained["a"][-2], trained["b"][-2])


# --------------------------------------------------------------------------- the schedule


@pytest.mark.parametrize("warmup_epochs", [0.0, 2.0, 1.5])
def test_learning_rate_warms_up_then_decays_to_zero(warmup_epochs):
    peak, epochs, steps = 0.01, 10, 5
    config = model_config(epochs=epochs, learning_rate=peak)
    schedule = train.learning_rate(config, warmup_epochs=warmup_epochs, steps_per_epoch=steps)
    lr = np.array([float(schedule(s)) for s in range(epochs * steps + 1)])
    total, warmup = epochs * steps, round(warmup_epochs * steps)
    # Linear from a tenth of the peak to the peak over the warm-up ...
    for s in range(warmup):
        assert lr[s] == pytest.approx(peak / 10 + (peak - peak / 10) * s / warmup, rel=1e-5)
    # ... then half a cosine from the peak down to 0 at the last step.
    for s in range(warmup, total + 1):
        assert lr[s] == pytest.approx(peak * 0.5 * (1 + np.cos(np.pi * (s - warmup) / (total - warmup))), rel=1e-4, abs=1e-9)
    assert lr.max() == pytest.approx(peak) and lr.argmax() == warmup
    assert np.all(np.diff(lr[: warmup + 1]) > 0) and np.all(np.diff(lr[warmup:]) < 0)
    assert lr[-1] == pytest.approx(0, abs=1e-9)
    if warmup:
        assert lr[0] == pytest.approx(peak / 10)


# --------------------------------------------------------------------------- early stopping


@pytest.fixture(scope="module")
def contrary():
    """A task whose validation labels are the training labels flipped.

    The more the model learns, the higher its training accuracy and the lower its
    validation accuracy: validation accuracy peaks early, training accuracy late.
    """
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 2, size=n).astype("int32")
        x = rng.standard_normal((n, 4, 8, 1)).astype("float32")
        x[np.arange(n), :, y, 0] += 0.6  # class k: a weak bump in mel band k
        return x, y

    x_train, y_train = draw(96)
    x_val, y_val = draw(64)
    return x_train, y_train, x_val, 1 - y_val


@pytest.mark.parametrize(("patience", "epochs_run"), [(0, 8), (2, 3)])
def test_early_stopping_watches_validation_accuracy_and_restores_the_best_weights(contrary, patience, epochs_run):
    x_train, y_train, x_val, y_val = contrary
    config = model_config(epochs=8, learning_rate=0.01, batch_size=16)
    result = train.fit(job(config=config, patience=patience, seed=0), x_train, y_train, x_val, y_val, n_classes=2)
    back, history = result.back, result.history
    val, acc = history["val_accuracy"], history["accuracy"]
    assert result.epochs_run == len(val) == epochs_run
    # The case is what it should be: validation peaks first, training accuracy keeps rising.
    assert int(np.argmax(val)) == 0 and val[-1] < val[0]
    assert int(np.argmax(acc)) > 0 and acc[-1] > acc[0]
    assert result.best_epoch == 1 and result.best_val_accuracy == val[0]
    # The model handed back is the best epoch's, not the last one's.
    _, restored = back.evaluate(train.dataset(x_val, y_val, batch_size=16), verbose=0)
    assert restored == pytest.approx(val[0], abs=1e-6)
    assert restored > val[-1]


def test_fit_runs_the_callers_callbacks_and_counts_the_epochs_they_allow(contrary):
    """A caller's callback (a benchmark's timer, a wall-time cap) sees every epoch and may stop the training."""
    import keras

    class StopAfterTwo(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

    x_train, y_train, x_val, y_val = contrary
    stop = StopAfterTwo()
    result = train.fit(job(config=model_config(epochs=8, batch_size=16), seed=0), x_train, y_train, x_val, y_val,
                       n_classes=2, callbacks=[stop])
    assert [e for e, _ in stop.epochs] == [0, 1] and result.epochs_run == 2
    assert all({"accuracy", "val_accuracy"} <= set(keys) for _, keys in stop.epochs)
    assert result.draws_per_epoch == len(x_train) and result.samples_per_second > 0


def test_the_card_records_what_shaped_the_model_and_the_library_actually_held_out():
    fitted = job("conv1d", seed=11, test_fold=3, target="family")
    reference = np.linspace(-50, -20, FEATURES.n_mels)
    made = train.card(fitted, ["Brass", "Winds"], unseen_library=None, colour_reference=reference)
    assert (made.model, made.seed, made.test_folds, made.target, made.unseen_library) == ("conv1d", 11, [3], "family", None)
    assert (made.clean, made.features, made.typed_config) == (fitted.clean, fitted.features, fitted.config)
    assert made.labels == ["Brass", "Winds"]
    assert made.colour_degree == TINY_PARAMS["train"]["library_colour"] == fitted.library_colour
    np.testing.assert_allclose(made.colour_reference, reference, atol=1e-6)
    off = train.card(replace(fitted, library_colour=None), ["Brass", "Winds"], unseen_library=None)
    assert (off.colour_degree, off.colour_reference) == (None, None)
    with pytest.raises(ValueError, match="come together"):
        train.card(fitted, ["Brass", "Winds"], unseen_library=None)


def received_by_fit(monkeypatch, features_dir, **changes):
    """What ``train.run`` hands to ``fit`` (training and validation rows), without fitting."""
    received = []

    class Received(Exception):
        pass

    def fit_spy(job, x_train, y_train, x_val, y_val, **kwargs):
        received.append((x_train, x_val))
        raise Received

    monkeypatch.setattr(train, "fit", fit_spy)
    with pytest.raises(Received):
        run(features_dir, **changes)
    return received[0]


@pytest.mark.parametrize("degree, unseen", [(None, None), (2, None), (2, "B")])
def test_run_brings_every_training_library_to_their_average_colouring(features_dir, monkeypatch, degree, unseen):
    """With train.library_colour, each training and validation window is read with its library's shift to the
    average colouring of the libraries that train; a held-out library has no part in that average."""
    from instrclf import colour
    from instrclf.features import Features

    x_train, x_val = received_by_fit(monkeypatch, features_dir, test_fold=4, unseen_library=unseen, library_colour=degree)
    cache = Features(features_dir, clean=CLEAN, features=FEATURES)
    sets = data.fold_sets(cache.index, test_fold=4, unseen_library=unseen)
    training = sorted(set(sets.train["library"]))
    assert training == (["A", "B"] if unseen is None else ["A"])
    for x, rows in ((x_train, sets.train), (x_val, sets.val)):
        plain = cache.take(rows)
        got = x.read(np.arange(len(x)))
        if degree is None:
            np.testing.assert_array_equal(got, plain)
            continue
        spectra = cache.library_spectra()
        target = np.mean([colour.colouring(spectra[lib], degree) for lib in training], axis=0)
        libraries = rows["library"].to_numpy()
        for lib in training:
            moved = (got[libraries == lib] - plain[libraries == lib]).mean(axis=(0, 1, 3))
            np.testing.assert_allclose(moved, target - colour.colouring(spectra[lib], degree), atol=1e-4)
            # after the shift the library's colouring is the target
            np.testing.assert_allclose(colour.colouring(spectra[lib] + moved, degree), target, atol=1e-3)
        if unseen is None:  # the two libraries differ: real shifts, in opposite directions
            assert np.abs(target - colour.colouring(spectra["A"], degree)).max() > 1e-3


def test_every_fold_model_learns_at_one_reference_when_a_library_misses_some_folds(tmp_path):
    """A small library with notes in folds 0-1 only still counts in every fold's reference: the fold cards agree."""
    from synthetic import make_clean_dir

    from instrclf import colour, features

    clean_dir = make_clean_dir(tmp_path / "clean", libraries=("A", "B", "own"))
    index = layout.read_index(clean_dir)
    layout.write_index(clean_dir, index[(index["library"] != "own") | index["fold"].isin([0, 1])])
    features.run(clean_dir, tmp_path / "features", clean=CLEAN, features=FEATURES, progress=False)
    cache = features.Features(tmp_path / "features", clean=CLEAN, features=FEATURES)
    targets = []
    for fold in (0, 2):  # fold 0 trains on folds 2-4 (no note of own), fold 2 on folds 4, 0 and 1
        sets = data.fold_sets(cache.index, test_fold=fold, unseen_library="B")
        assert ("own" in set(sets.train["library"])) == (fold == 2)
        shifts, target = train.colour_shifts(cache, degree=2, unseen_library="B")
        assert set(shifts) == {"A", "B", "own"}
        targets.append(target)
    np.testing.assert_array_equal(targets[0], targets[1])
    np.testing.assert_allclose(targets[0], colour.reference(cache.library_spectra(), {"A", "own"}, 2))
    assert train.colour_shifts(cache, degree=None, unseen_library="B") == (None, None)


def test_a_warm_up_as_long_as_the_schedule_is_refused_naming_both_keys():
    with pytest.raises(ParameterError, match=r"^train.warmup_epochs \(2.0\) must be < models.baseline.epochs \(2\)$"):
        train.learning_rate(model_config(epochs=2), warmup_epochs=2.0, steps_per_epoch=3)


# --------------------------------------------------------------------------- what run trains on


def test_run_trains_on_the_spectrograms_of_its_three_folds_of_the_seen_libraries(features_dir, monkeypatch):
    """What fit receives: exactly the arrays of the training and validation folds, their labels, the unseen library never."""
    received, threads, rates = [], [], []
    fit, compile_model = train.fit, train.compile_model

    def fit_spy(job, x_train, y_train, x_val, y_val, **kwargs):
        # rows of the features file, read batch by batch: never an array of the whole set
        assert not isinstance(x_train, np.ndarray) and not isinstance(x_val, np.ndarray)
        received.append((x_train.read(np.arange(len(x_train))), y_train.copy(), x_val.read(np.arange(len(x_val))), y_val.copy()))
        return fit(job, x_train, y_train, x_val, y_val, **kwargs)

    def compile_spy(model, *, rate):
        rates.append(rate)
        return compile_model(model, rate=rate)

    monkeypatch.setattr(train, "fit", fit_spy)
    monkeypatch.setattr(train, "set_threads", threads.append)
    monkeypatch.setattr(train, "compile_model", compile_spy)
    model, card, figures = run(features_dir, test_fold=4)

    (x_train, y_train, x_val, y_val), = received
    index, spectrograms = layout.read_features(features_dir, settings=features_settings())
    labels = ["Fl", "Tbn", "Vn"]

    def expected(folds):
        rows = index[(index["library"] == "A") & index["fold"].isin(folds)]  # never the unseen library B
        return spectrograms[rows.index.values], np.array([labels.index(x) for x in rows["label"]], dtype="int32")

    # The same windows in any order: compare the sorted rows of spectrogram and label together.
    for (x, y), (want_x, want_y) in (((x_train, y_train), expected([1, 2, 3])), ((x_val, y_val), expected([0]))):
        got = sorted(zip(map(bytes, x.reshape(len(x), -1)), y.tolist(), strict=True))
        want = sorted(zip(map(bytes, np.asarray(want_x).reshape(len(want_x), -1)), want_y.tolist(), strict=True))
        assert got == want
    # 3 classes x 3 folds x 2 notes x 2 windows in library A
    assert figures["n_train_windows"] == len(x_train) == 36 and figures["n_val_windows"] == len(x_val) == 12
    assert threads == [None]
    schedule = rates[0].get_config()
    assert schedule["decay_steps"] == 2 * 3  # 2 epochs of ceil(36 / 16) steps, no warm-up
    assert schedule["warmup_target"] is None and schedule["initial_learning_rate"] == pytest.approx(0.003)

    # What the card says comes from the data: its labels, the fold tested, the library held out.
    assert card.labels == labels and card.test_folds == [4] and card.unseen_library == "B"
    assert model.input_shape == (None, CLEAN.window_length, 1) and model.output_shape == (None, 3)
    # The saved model is the fitted back end behind the front end: same output on the fold's spectrograms.
    back = model.get_layer(backends.backend_name("baseline", 4))
    np.testing.assert_allclose(back.predict(x_val, verbose=0), model.predict(windows_of(features_dir, 0), verbose=0),
                               rtol=1e-5, atol=1e-6)


def features_settings():
    from instrclf.features import settings_of

    return settings_of(CLEAN, FEATURES)


def windows_of(features_dir, fold):
    """The raw windows of library A's fold ``fold``, in the features index's order (the clean folder beside it)."""
    from instrclf import data

    index = layout.read_index(features_dir)
    rows = index[(index["library"] == "A") & (index["fold"] == fold)]
    return data.load_windows(Path(features_dir).parent / "clean", rows, n_samples=CLEAN.window_length)


def test_set_threads_is_honoured(monkeypatch):
    """In a fresh process (TensorFlow fixes its thread pools at its first op): both pools are limited."""
    code = textwrap.dedent(
        """
        from instrclf import train
        train.set_threads(1)
        import tensorflow as tf
        tf.constant(1.0) + 1.0
        print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "1 1"
    # None (every core) leaves TensorFlow's defaults alone.
    calls = []
    monkeypatch.setattr(train.tf.config.threading, "set_intra_op_parallelism_threads", calls.append)
    monkeypatch.setattr(train.tf.config.threading, "set_inter_op_parallelism_threads", calls.append)
    train.set_threads(None)
    assert calls == []
    train.set_threads(3)
    assert calls == [3, 1]


# --------------------------------------------------------------------------- batch composition


def test_shuffled_batches_mix_the_classes_of_a_training_set_sorted_by_class():
    """Windows arrive sorted by path, so by class; every training batch must still mix the classes.

    4,000 windows of 8 classes in blocks of 500: a shuffle over only part of the set would
    give its first batches one or two classes. A uniform shuffle puts at least 5 of the 8
    classes in every batch of 64 (the chance of fewer is below 1e-6 per batch).
    """
    n_classes, per_class, batch = 8, 500, 64
    y = np.repeat(np.arange(n_classes, dtype="int32"), per_class)
    x = np.arange(len(y), dtype="float32")[:, None]
    for epoch, labels in enumerate([b[1].numpy() for b in train.dataset(x, y, batch_size=batch, seed=3)] for _ in range(2)):
        full = labels[:-1]  # the last batch is a remainder
        assert min(len(set(b)) for b in full) >= 5, f"epoch {epoch}: a batch of few classes"
        first_half = np.concatenate(full[: len(full) // 2])
        # Each class is spread over the epoch, not gathered at its start or end.
        counts = np.bincount(first_half, minlength=n_classes) / len(first_half)
        assert np.abs(counts - 1 / n_classes).max() < 0.05, f"epoch {epoch}: classes unevenly spread {counts}"


@pytest.mark.parametrize(
    ("cluster", "task", "chief"),
    [
        ({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 0}, True),
        ({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 1}, False),
        ({"chief": ["c:0"], "worker": ["a:1", "b:2"]}, {"type": "chief", "index": 0}, True),
        ({"chief": ["c:0"], "worker": ["a:1", "b:2"]}, {"type": "worker", "index": 0}, False),  # the chief writes, not worker 0 too
        ({"chief": ["c:0"], "worker": ["a:1"], "evaluator": ["e:3"]}, {"type": "evaluator", "index": 0}, False),
    ],
)
def test_exactly_one_process_of_a_cluster_writes(monkeypatch, cluster, task, chief):
    import json

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert train.is_chief("multi_worker") is chief
    assert train.is_chief("default") is True  # one process: always the writer


def test_a_weights_fraction_of_a_group_is_rounded_not_floored():
    """Three windows of weight 0.9: 2.7 draws an epoch, rounded to 3 (floored, the group would lose a third)."""
    assert train.draws_per_epoch(np.full(3, 0.9), 3) == 3
    assert train.draws_per_epoch(np.array([1.0, 1.0, 1.5, 1.5, 1.5]), 5) == 2 + 3 + 2  # 1.5 x 3 = 4.5 -> 3 whole + round(1.5)


def test_batches_read_from_the_file_are_those_of_the_array_in_memory(features_dir):
    """Rows gathered from the features file batch by batch give exactly the batches of the same rows in memory,
    in the order a shuffle of the rows themselves drew before (so a seed keeps its batches)."""
    from instrclf.features import Features

    cache = Features(features_dir, clean=CLEAN, features=FEATURES)
    rows = cache.index[cache.index["fold"].isin([1, 2])]
    selection, x = cache.select(rows), cache.take(rows)
    y = np.arange(len(rows), dtype=np.int32)
    np.testing.assert_array_equal(x, np.asarray(cache.spectrograms)[rows.index.values])
    train.seed_everything(3)
    from_file = [(bx.numpy(), by.numpy()) for bx, by in train.dataset(selection, y, batch_size=5, seed=3)]
    train.seed_everything(3)
    in_memory = [(bx.numpy(), by.numpy()) for bx, by in train.dataset(x, y, batch_size=5, seed=3)]
    train.seed_everything(3)
    rows_shuffled = train.tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=3).batch(5)
    before = [(bx.numpy(), by.numpy()) for bx, by in rows_shuffled]
    assert len(from_file) == len(in_memory) == len(before) == int(np.ceil(len(y) / 5))
    for (a, ay), (b, by), (c, cy) in zip(from_file, in_memory, before, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(ay, by)
        np.testing.assert_array_equal(ay, cy)
        np.testing.assert_array_equal(a, x[ay])  # each label travels with its own row


def test_parts_of_a_batch_add_up_to_the_batch():
    """Multi-worker: part k of n of every batch; together the parts are the batch, in order, each row once."""
    x = np.arange(23, dtype=np.float32).reshape(23, 1, 1, 1)
    y = np.arange(23, dtype=np.int32)
    train.seed_everything(1)
    whole = [by.numpy() for _, by in train.dataset(x, y, batch_size=8, seed=1)]
    parts = []
    for k in range(3):
        train.seed_everything(1)
        parts.append([by.numpy() for _, by in train.dataset(x, y, batch_size=8, seed=1, part=(k, 3))])
    for b, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[b] for p in parts]), batch)
    assert [len(p[-1]) for p in parts] == [3, 2, 2]  # the last batch of 7


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_data_of_one_library_records_no_held_out_library_even_when_one_is_named(tmp_path, monkeypatch):
    """TinySOL alone with split.unseen_library set: every fold trains on its one library, so the card holds out none
    (predict refuses models whose card names a held-out library the data does not hold out)."""
    one = make_features_dir(tmp_path, libraries=("A",))

    def quick_fit(job, x_train, y_train, x_val, y_val, *, n_classes, **kwargs):  # the card is the point, not training
        back = backends.build(job.model, config=job.config, input_shape=x_train.shape[1:], n_classes=n_classes, fold=job.fold)
        return train.Fitted(back=back, history={}, epochs_run=1, best_epoch=1, best_val_accuracy=0.5, train_seconds=1.0,
                            draws_per_epoch=len(x_train))

    monkeypatch.setattr(train, "fit", quick_fit)
    assert TINY_PARAMS["split"]["unseen_library"] == "B"
    _, card, _ = run(one, test_fold=0)
    assert card.unseen_library is None


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_warm_up_that_rounds_to_the_whole_schedule_still_leaves_a_decay():
    """1.6 of 2 epochs of one step rounds to 2 steps of warm-up: one is kept for the decay, and training can start."""
    peak = 0.01
    schedule = train.learning_rate(model_config(epochs=2, learning_rate=peak), warmup_epochs=1.6, steps_per_epoch=1)
    lr = [float(schedule(s)) for s in range(3)]
    assert lr[0] == pytest.approx(peak / 10) and lr[1] == pytest.approx(peak) and lr[2] == pytest.approx(0, abs=1e-9)


def _quick_fit(job, x_train, y_train, x_val, y_val, *, n_classes, **kwargs):
    """An untrained back end in place of fit: for what run reports around the training."""
    back = backends.build(job.model, config=job.config, input_shape=x_train.shape[1:], n_classes=n_classes, fold=job.fold)
    return train.Fitted(back=back, history={}, epochs_run=1, best_epoch=1, best_val_accuracy=0.5, train_seconds=1.0,
                        draws_per_epoch=len(x_train))


def test_the_peak_memory_is_the_processs_in_megabytes(features_dir, monkeypatch):
    """peak_memory_mb: the resident peak of the training process (TensorFlow alone takes well over 100 MB)."""
    import resource

    monkeypatch.setattr(train, "fit", _quick_fit)
    _, _, figures = run(features_dir, test_fold=0)
    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert 100 <= figures["peak_memory_mb"] <= now + 1


def test_the_train_stage_keeps_the_timings_out_of_the_metrics(tmp_path, monkeypatch):
    """The metrics file is reproduced byte for byte by a rerun; the timings, which are not, go to their own file."""
    import importlib.util
    import json

    from synthetic import tiny_card, write_params

    from instrclf import models

    spec = importlib.util.spec_from_file_location("stage_train", ROOT / "stages" / "train.py")
    stage_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage_module)
    model = models.build("baseline", config=model_config(), clean=CLEAN, features=FEATURES, n_classes=3)
    figures = {"best_val_accuracy": 0.5, "epochs_run": 2, "train_seconds": 1.5, "read_seconds": 0.1,
               "samples_per_second": 10.0, "peak_memory_mb": 500}
    monkeypatch.setattr(train, "run", lambda job, **kwargs: (model, tiny_card("baseline", labels=["Fl", "Tbn", "Vn"],
                                                                               test_folds=[0]), dict(figures)))
    out = tmp_path / "out"
    stage_module.main(["--params", str(write_params(tmp_path / "params.yaml", TINY_PARAMS)), "--model", "baseline",
                       "--fold", "0", "--features", str(tmp_path / "features"), "--out", str(out / "baseline-0.keras"),
                       "--metrics", str(out / "metrics.json"), "--timings", str(out / "timings.json"),
                       "--live", str(out / "live")])
    assert set(json.loads((out / "timings.json").read_text())) == set(train.TIMING_KEYS)
    assert json.loads((out / "metrics.json").read_text()) == {"best_val_accuracy": 0.5, "epochs_run": 2}


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


@pytest.mark.parametrize(("replicas", "pipelines"), [(4, 2), (6, 3), (8, 2), (2, 2)])
def test_across_processes_every_part_of_a_batch_is_read_by_exactly_one_pipeline(monkeypatch, replicas, pipelines):
    """Workers each run one input pipeline for their local replicas; together they read every part of
    the global batch once: no two read the same rows, none is left out."""
    from instrclf.runtime import tf

    asked = []

    def make(part):
        asked.append(part)
        return tf.data.Dataset.range(3)

    class Strategy:
        num_replicas_in_sync = replicas

        def distribute_datasets_from_function(self, fn, options=None):
            return [fn(tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=i,
                                                  num_replicas_in_sync=replicas)) for i in range(pipelines)]

    monkeypatch.setattr(train, "across_processes", lambda strategy: True)
    train.distributed(Strategy(), make)
    assert sorted(asked) == [(r, replicas) for r in range(replicas)]
