"""train.library_weights: training draws a library's windows that many times more often (instrclf.data, instrclf.train)."""

import numpy as np
import pandas as pd
import pytest
from synthetic import TINY_PARAMS, make_features_dir, tiny_settings

from instrclf import data, layout, train
from instrclf.errors import ParameterError
from instrclf.settings import TrainSettings, TrainingJob

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
    assert train.draws_per_epoch(data.draws_of(ROWS, {"B": weight}, libraries=["A", "B"]), N_A + N_B) == N_A + round(weight * N_B)


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
    """train.run: the training batches draw B's windows 3 times as often, validation every window once; steps follow the draws."""
    from dataclasses import replace

    features_dir = make_features_dir(tmp_path)
    drawn, rates = {}, []
    datasets, compile_model = train.datasets, train.compile_model

    def record(job, x_train, y_train, x_val, y_val, *, draws=None, replicas=None):
        train_ds, val_ds = datasets(job, x_train, y_train, x_val, y_val, draws=draws, replicas=replicas)
        x_train, x_val = x_train.read(np.arange(len(x_train))), x_val.read(np.arange(len(x_val)))  # rows of the file
        # which windows each epoch draws, identified by their spectrogram's bytes
        key = {bytes(w): i for i, w in enumerate(x_train.reshape(len(x_train), -1))}
        drawn["train"] = [key[bytes(w)] for bx, _ in train_ds for w in bx.numpy().reshape(len(bx), -1)]
        drawn["val"] = np.concatenate([bx.numpy() for bx, _ in val_ds])
        drawn["x_val"], drawn["n_train"] = x_val, len(x_train)
        return train_ds, val_ds

    def compile_spy(model, *, rate):
        rates.append(rate)
        return compile_model(model, rate=rate)

    monkeypatch.setattr(train, "datasets", record)
    monkeypatch.setattr(train, "compile_model", compile_spy)
    job = replace(TrainingJob.from_params(TINY_PARAMS, model="baseline", fold=0), seed=7,
                  unseen_library=None, library_weights={"B": 3})  # both libraries train
    train.run(job, features_dir=features_dir)
    index = layout.read_index(features_dir)
    train_rows = index[index["fold"].isin([2, 3, 4])].reset_index(drop=True)
    counts = np.bincount(drawn["train"], minlength=drawn["n_train"])
    assert len(train_rows) == drawn["n_train"]
    # The windows arrive in the index's order: A's each drawn once per epoch, B's three times.
    assert sorted(set(counts[train_rows["library"].to_numpy() == "A"].tolist())) == [1]
    assert sorted(set(counts[train_rows["library"].to_numpy() == "B"].tolist())) == [3]
    np.testing.assert_array_equal(drawn["val"], drawn["x_val"])  # validation: every window once, in order
    per_epoch = len(drawn["train"])
    assert rates[0].get_config()["decay_steps"] == 2 * int(np.ceil(per_epoch / 16))  # 2 epochs of the weighted size


def test_weights_that_leave_no_window_to_draw_are_refused():
    """0.01 of 10 windows rounds to none drawn: training would see nothing, so it is an error, not an empty epoch."""
    draws = data.draws_of(ROWS, {"A": 0.01, "B": 0.01}, libraries=["A", "B"])
    with pytest.raises(ParameterError, match=r"^train.library_weights leave no training window to draw$"):
        train.draws_per_epoch(draws, len(ROWS))
    with pytest.raises(ParameterError, match="leave no training window"):
        train.dataset(X, Y, batch_size=8, seed=1, draws=draws)


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_heavily_weighted_librarys_draws_do_not_crowd_the_end_of_the_epoch():
    """Weight 10 on B: 30 draws of A among 130. A uniform shuffle of the whole epoch puts about a third
    of A's draws in its first third (10, give or take 2.3); a shuffle over fewer draws than the
    epoch would emit A first and leave B's repeats to the end."""
    for epoch in epochs(weighted({"B": 10.0})):
        order = np.concatenate(epoch)
        assert len(order) == 130
        early = int((order[: len(order) // 3] < N_A).sum())
        assert 4 <= early <= 16, f"{early} of A's 30 draws in the first third of the epoch"
