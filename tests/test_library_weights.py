"""train.library_weights: training draws a library's windows that many times more often (instrclf.data, instrclf.train)."""

import numpy as np
import pandas as pd
import pytest
from synthetic import TINY_PARAMS, make_features_dir, tiny_settings

from instrclf import data, settings, train
from instrclf.errors import ParameterError
from instrclf.settings import SplitSettings, TrainSettings

CLEAN, FEATURES = tiny_settings()

#: 30 windows of library A, then 10 of library B; window i holds the number i.
N_A, N_B = 30, 10
ROWS = pd.DataFrame({"library": ["A"] * N_A + ["B"] * N_B})
X = np.arange(N_A + N_B, dtype=np.float32).reshape(-1, 1)
Y = np.array([0] * N_A + [1] * N_B, dtype=np.int32)


def epochs(ds, n=2) -> list:
    """The window numbers of each epoch's batches, in order (one list of arrays per epoch)."""
    return [[batch[0].numpy()[:, 0].astype(int) for batch in ds] for _ in range(n)]


def weighted(weights, *, seed=3, batch_size=8):
    draws = data.draws_of(ROWS, weights, libraries=["A", "B"])
    return train.dataset(X, Y, batch_size=batch_size, seed=seed, draws=draws)


@pytest.mark.parametrize("weight", [3.0, 2.5, 0.5])
def test_each_epoch_draws_a_library_weight_times_as_often(weight):
    for batches in epochs(weighted({"B": weight})):
        drawn = np.concatenate(batches)
        counts = np.bincount(drawn, minlength=N_A + N_B)
        assert np.all(counts[:N_A] == 1)  # library A: weight 1, every window once
        b = counts[N_A:]
        assert b.sum() == round(weight * N_B)  # B's share of the epoch: weight x its windows
        assert set(b.tolist()) <= {int(np.floor(weight)), int(np.ceil(weight))}
        share = b.sum() / len(drawn)
        assert share == pytest.approx(weight * N_B / (N_A + weight * N_B), abs=0.5 / len(drawn))
        assert all(len(batch) == 8 for batch in batches[:-1])
    assert train.weighted_order(data.draws_of(ROWS, {"B": weight}, libraries=["A", "B"]), seed=3)[1] == N_A + round(weight * N_B)


def test_the_extra_draws_of_a_fractional_weight_change_from_epoch_to_epoch():
    first, second = (np.bincount(np.concatenate(b), minlength=N_A + N_B)[N_A:] for b in epochs(weighted({"B": 2.5})))
    assert not np.array_equal(first, second)  # which B windows are drawn a third time is redrawn each epoch


def test_weighted_batches_are_shuffled_and_repeat_from_the_seed():
    a, b, c = epochs(weighted({"B": 3.0})), epochs(weighted({"B": 3.0})), epochs(weighted({"B": 3.0}, seed=4))
    for x, y in zip(a, b):
        assert all(np.array_equal(p, q) for p, q in zip(x, y))
    assert not all(np.array_equal(p, q) for p, q in zip(a[0], c[0]))
    assert not all(np.array_equal(p, q) for p, q in zip(a[0], a[1]))  # reshuffled each epoch
    first = np.concatenate(a[0])
    assert not np.all(np.diff(first) >= 0)  # not in index order
    assert {int(v >= N_A) for v in first[:16]} == {0, 1}  # B's draws are mixed in, not appended


@pytest.mark.parametrize("weights", [{}, {"A": 1.0}, {"A": 1, "B": 1.0}])
def test_no_weight_other_than_one_gives_exactly_the_unweighted_batches(weights):
    """Default params (an empty map): the batches are the ones training drew before weights existed."""
    import tensorflow as tf

    assert data.draws_of(ROWS, weights, libraries=["A", "B"]) is None
    plain = tf.data.Dataset.from_tensor_slices((X, Y)).shuffle(len(X), seed=3, reshuffle_each_iteration=True).batch(8)
    for got, expected in zip(epochs(weighted(weights)), epochs(plain)):
        assert len(got) == len(expected) and all(np.array_equal(p, q) for p, q in zip(got, expected))


def test_a_name_that_is_no_library_of_the_data_is_refused_naming_the_key():
    with pytest.raises(ParameterError, match=r"^train.library_weights.own: not a library of the data; its libraries are \['A', 'B'\]$"):
        data.draws_of(ROWS, {"own": 20}, libraries=["A", "B"])


def test_the_held_out_library_cannot_be_weighted():
    with pytest.raises(ParameterError, match=r"^train.library_weights.B: the held-out library"):
        data.draws_of(ROWS[ROWS["library"] == "A"], {"B": 2}, libraries=["A", "B"], unseen_library="B")


@pytest.mark.parametrize("bad", [0, -1.0, "2", True])
def test_weights_must_be_positive_numbers(bad):
    with pytest.raises(ParameterError, match=r"^train.library_weights.own = "):
        TrainSettings.from_params(TINY_PARAMS["train"] | {"library_weights": {"own": bad}})


def test_run_weights_training_windows_only(tmp_path, monkeypatch):
    """train.run: the training set is drawn by weight, validation unweighted; steps per epoch follow the draws."""
    features_dir = make_features_dir(tmp_path)
    calls, rates = [], []
    dataset, compile_model = train.dataset, train.compile_model

    def spy(x, y, **kwargs):
        calls.append((len(x), kwargs.get("draws"), kwargs.get("seed")))
        return dataset(x, y, **kwargs)

    def compile_spy(model, *, rate):
        rates.append(rate)
        return compile_model(model, rate=rate)

    monkeypatch.setattr(train, "dataset", spy)
    monkeypatch.setattr(train, "compile_model", compile_spy)
    split = SplitSettings.from_params({"test_folds": [0], "unseen_library": None})  # both libraries train
    train.run(
        "baseline", test_fold=0, features_dir=features_dir, clean=CLEAN, features=FEATURES, split=split,
        train=TrainSettings.from_params(TINY_PARAMS["train"] | {"library_weights": {"B": 3}}),
        config=settings.model_config(TINY_PARAMS, "baseline"), seed=7, target="instrument",
    )
    (n_train, draws, seed), (n_val, val_draws, val_seed) = calls
    assert val_draws is None and val_seed is None  # validation: every window once, in order
    assert seed == 7 and len(draws) == n_train and sorted(set(draws.tolist())) == [1.0, 3.0]
    assert (draws == 3.0).sum() == (draws == 1.0).sum()  # as many B windows as A windows in training
    per_epoch = int(draws.sum())
    assert rates[0].get_config()["decay_steps"] == 2 * int(np.ceil(per_epoch / 16))  # 2 epochs of the weighted size
