"""Training: seeding, the schedule, early stopping and what train.run trains on (instrclf.train)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from synthetic import TINY_PARAMS, make_features_dir, tiny_settings

from instrclf import data, layout, models, settings, train
from instrclf.errors import ParameterError
from instrclf.features import Features
from instrclf.settings import SplitSettings, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
CLEAN, FEATURES = tiny_settings()
SPLIT = settings.section(TINY_PARAMS, SplitSettings)


def train_settings(**changes):
    return TrainSettings.from_params(TINY_PARAMS["train"] | changes)


def model_config(name="baseline", **changes):
    return settings.MODEL_CONFIGS[name].from_params(TINY_PARAMS["models"][name] | changes)


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    return make_features_dir(tmp_path_factory.mktemp("data"))


def run(features_dir, name="baseline", *, seed=7, test_fold=0, **train_changes):
    return train.run(
        name,
        test_fold=test_fold,
        features_dir=features_dir,
        clean=CLEAN,
        features=FEATURES,
        split=SPLIT,
        train=train_settings(**train_changes),
        config=settings.model_config(TINY_PARAMS, name),
        seed=seed,
        target="instrument",
    )


def back_end_weights(model, name, fold=0):
    return model.get_layer(models.backend_name(name, fold)).get_weights()


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
    back = models.backend("baseline", config=settings.model_config(TINY_PARAMS, "baseline"), input_shape=(6, 8, 1),
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


@pytest.mark.parametrize("warmup_epochs", [0.0, 2.0])
def test_learning_rate_warms_up_then_decays_to_zero(warmup_epochs):
    peak, epochs, steps = 0.01, 10, 5
    ts = train_settings(warmup_epochs=warmup_epochs)
    schedule = train.learning_rate(model_config(epochs=epochs, learning_rate=peak), ts, steps_per_epoch=steps)
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
    train.seed_everything(0)
    back = models.backend("baseline", config=config, input_shape=(4, 8, 1), n_classes=2, fold=0)
    train.compile_model(back, rate=train.learning_rate(config, train_settings(), steps_per_epoch=6))
    result = train.fit(
        back,
        train.dataset(x_train, y_train, batch_size=16, seed=0),
        train.dataset(x_val, y_val, batch_size=16),
        epochs=8,
        patience=patience,
    )
    history = result["history"]
    val, acc = history["val_accuracy"], history["accuracy"]
    assert result["epochs_run"] == len(val) == epochs_run
    # The case is what it should be: validation peaks first, training accuracy keeps rising.
    assert int(np.argmax(val)) == 0 and val[-1] < val[0]
    assert int(np.argmax(acc)) > 0 and acc[-1] > acc[0]
    assert result["best_epoch"] == 1 and result["best_val_accuracy"] == val[0]
    # The model handed back is the best epoch's, not the last one's.
    _, restored = back.evaluate(train.dataset(x_val, y_val, batch_size=16), verbose=0)
    assert restored == pytest.approx(val[0], abs=1e-6)
    assert restored > val[-1]


def test_a_warm_up_as_long_as_the_schedule_is_refused_naming_both_keys():
    with pytest.raises(ParameterError, match=r"^train.warmup_epochs \(2.0\) must be < models.baseline.epochs \(2\)$"):
        train.learning_rate(model_config(epochs=2), train_settings(warmup_epochs=2.0), steps_per_epoch=3)


# --------------------------------------------------------------------------- what run trains on


def test_run_trains_only_on_its_three_folds_of_the_seen_libraries(features_dir, monkeypatch):
    seen, threads, rates = [], [], []
    take = Features.take

    def spy(self, rows):
        seen.append(rows.copy())
        return take(self, rows)

    compile_model = train.compile_model

    def compile_spy(model, *, rate):
        rates.append(rate)
        return compile_model(model, rate=rate)

    monkeypatch.setattr(Features, "take", spy)
    monkeypatch.setattr(train, "set_threads", threads.append)
    monkeypatch.setattr(train, "compile_model", compile_spy)
    model, card, figures = run(features_dir, test_fold=4)

    index = layout.read_index(features_dir)
    rows = [i for part in seen for i in part["window"]]
    assert len(rows) == len(set(rows))
    read = index[index["window"].isin(rows)]
    assert set(read["library"]) == {"A"}  # never the unseen library B
    assert set(read["fold"]) == {0, 1, 2, 3}  # never the test fold 4; 0 validates
    train_rows, val_rows = seen
    assert set(train_rows["fold"]) == {1, 2, 3} and set(val_rows["fold"]) == {0}
    expected = index[(index["library"] == "A") & index["fold"].isin([1, 2, 3])]
    # 3 classes x 3 folds x 2 notes x 2 windows in library A
    assert figures["n_train_windows"] == len(expected) == len(train_rows) == 36
    assert figures["n_val_windows"] == 12
    assert threads == [None]
    schedule = rates[0].get_config()
    assert schedule["decay_steps"] == 2 * 3  # 2 epochs of ceil(36 / 16) steps, no warm-up
    assert schedule["warmup_target"] is None and schedule["initial_learning_rate"] == pytest.approx(0.003)

    assert card.labels == ["Fl", "Tbn", "Vn"] and card.test_folds == [4] and card.unseen_library == "B"
    assert (card.clean, card.features, card.model, card.seed) == (CLEAN, FEATURES, "baseline", 7)
    assert card.typed_config == settings.model_config(TINY_PARAMS, "baseline")
    assert model.input_shape == (None, CLEAN.window_length, 1) and model.output_shape == (None, 3)
    assert 1 <= figures["epochs_run"] <= 2 and 0 <= figures["best_val_accuracy"] <= 1
    assert figures["n_params"] == model.count_params()
    assert 100 < figures["peak_memory_mb"] < 64 * 1024  # this process's peak resident memory, in MiB


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
