"""File-level evaluation: window probabilities -> notes -> metrics (instrclf.evaluate)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from instrclf import evaluate
from instrclf.errors import DataError, ParameterError

LABELS = ["Fl", "Tbn", "Vn"]
P = ["p_Fl", "p_Tbn", "p_Vn"]


def window_index(rows, *, fold=0, library="A"):
    """A window index from (Path, label) pairs, one row per window, in the given order."""
    return pd.DataFrame(
        [
            {"window": f"w{i}.wav", "Path": p, "instrument": lab, "family": "F", "library": library, "label": lab,
             "fold": fold, "window_index": i}
            for i, (p, lab) in enumerate(rows)
        ]
    )


@pytest.fixture
def small():
    """Two notes: b.wav (Tbn, 3 windows, window-level mostly wrong, file-level right), a.wav (Fl, 1 window)."""
    index = window_index([("b.wav", "Tbn"), ("a.wav", "Fl"), ("b.wav", "Tbn"), ("b.wav", "Tbn")])
    probs = np.array(
        [
            [0.10, 0.90, 0.00],  # b: right, confidently
            [0.70, 0.20, 0.10],  # a: right
            [0.55, 0.45, 0.00],  # b: wrong
            [0.50, 0.45, 0.05],  # b: wrong
        ]
    )
    return index, probs


def pairwise_auc(truth, scores):
    """ROC AUC by its definition: P(score of a positive > score of a negative), ties counting 1/2."""
    pos = scores[truth == 1]
    neg = scores[truth == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


# --------------------------------------------------------------------------- aggregate


def test_aggregate_is_the_mean_of_each_notes_windows(small):
    index, probs = small
    out = evaluate.aggregate(index, probs, labels=LABELS, subset="unseen")
    assert list(out.columns) == ["Path", "library", "fold", "set", "label", "predicted", "n_windows", *P]
    assert list(out["Path"]) == ["a.wav", "b.wav"]  # sorted, whatever the window order
    b = out.set_index("Path").loc["b.wav"]
    np.testing.assert_allclose(b[P].to_numpy(float), [1.15 / 3, 1.80 / 3, 0.05 / 3])
    assert (b["label"], b["predicted"], b["n_windows"], b["fold"], b["set"], b["library"]) == (
        "Tbn", "Tbn", 3, 0, "unseen", "A"
    )
    a = out.set_index("Path").loc["a.wav"]
    np.testing.assert_allclose(a[P].to_numpy(float), probs[1])
    assert list(out["n_windows"]) == [1, 3]


def test_aggregate_mean_on_random_windows():
    rng = np.random.default_rng(3)
    notes = [f"{i:02d}.wav" for i in range(7)]
    rows = [(notes[i], LABELS[i % 3]) for i in rng.integers(0, 7, size=40)]
    index = window_index(rows)
    probs = rng.dirichlet(np.ones(3), size=len(rows))
    out = evaluate.aggregate(index, probs, labels=LABELS).set_index("Path")
    for note in sorted(set(index["Path"])):
        mine = (index["Path"] == note).to_numpy()
        np.testing.assert_allclose(out.loc[note, P].to_numpy(float), probs[mine].mean(axis=0), rtol=1e-12)
        assert out.loc[note, "predicted"] == LABELS[int(np.argmax(probs[mine].mean(axis=0)))]
        assert out.loc[note, "n_windows"] == mine.sum()


def test_aggregate_ignores_the_frames_own_index(small):
    """After selecting a fold the DataFrame index is not 0..n-1: rows still pair with probs by position."""
    index, probs = small
    shuffled = index.set_axis([10, 3, 7, 1])
    pd.testing.assert_frame_equal(
        evaluate.aggregate(shuffled, probs, labels=LABELS), evaluate.aggregate(index, probs, labels=LABELS)
    )


@pytest.mark.parametrize(
    ("probs_shape", "match"),
    [((4, 2), "shape"), ((3, 3), "shape"), ((4,), "shape")],
)
def test_aggregate_rejects_mismatched_shapes(small, probs_shape, match):
    index, _ = small
    with pytest.raises(DataError, match=match):
        evaluate.aggregate(index, np.full(probs_shape, 0.5), labels=LABELS)


def test_aggregate_rejects_unknown_label_nan_and_mixed_notes(small):
    index, probs = small
    with pytest.raises(DataError, match=r"\['Tbn'\].*not among labels"):
        evaluate.aggregate(index, probs, labels=["Fl", "Vn", "X"])
    bad = probs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate.aggregate(index, bad, labels=LABELS)
    mixed = index.copy()
    mixed.loc[2, "fold"] = 3
    with pytest.raises(DataError, match=r"b\.wav.*different fold"):
        evaluate.aggregate(mixed, probs, labels=LABELS)
    with pytest.raises(DataError, match="lacks column"):
        evaluate.aggregate(index.drop(columns="Path"), probs, labels=LABELS)


@pytest.mark.parametrize("labels", [[], ["Fl", "Fl", "Vn"], ["Fl", "", "Vn"], ["Fl", 2, "Vn"]])
def test_bad_labels_raise(small, labels):
    index, probs = small
    with pytest.raises(ParameterError, match="labels"):
        evaluate.aggregate(index, probs, labels=labels)


# --------------------------------------------------------------------------- metrics


def test_window_wrong_but_file_right(small):
    index, probs = small
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    assert m["file_accuracy"] == 1.0
    assert m["window_accuracy"] == pytest.approx(2 / 4)
    assert (m["n_files"], m["n_windows"]) == (2, 4)


def test_window_right_but_file_wrong():
    """One long note mostly right by windows, wrong by its mean; one short note right: 3/4 windows, 1/2 files."""
    index = window_index([("a.wav", "Fl"), ("a.wav", "Fl"), ("a.wav", "Fl"), ("b.wav", "Vn")])
    probs = np.array([[0.40, 0.35, 0.25], [0.40, 0.35, 0.25], [0.00, 1.00, 0.00], [0.1, 0.1, 0.8]])
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    assert list(predictions["predicted"]) == ["Tbn", "Vn"]  # a: mean (0.267, 0.567, 0.167)
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    assert (m["window_accuracy"], m["file_accuracy"]) == (0.75, 0.5)


def test_metrics_keys_are_flat_finite_numbers(small):
    index, probs = small
    m = evaluate.metrics(index, probs, evaluate.aggregate(index, probs, labels=LABELS), labels=LABELS)
    assert set(m) == {
        "file_accuracy", "window_accuracy", "macro_f1", "roc_auc_macro", "roc_auc_micro", "n_files", "n_windows"
    }
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in m.values())


@pytest.fixture
def imbalanced():
    """12 one-window notes: 8 Fl (all right), 2 Tbn (one called Fl), 2 Vn (both called Fl)."""
    truth = ["Fl"] * 8 + ["Tbn"] * 2 + ["Vn"] * 2
    called = ["Fl"] * 8 + ["Tbn", "Fl"] + ["Fl", "Fl"]
    index = window_index([(f"{i:02d}.wav", lab) for i, lab in enumerate(truth)])
    probs = np.array([[0.1, 0.1, 0.1]])[[0] * 12] + 0.7 * (np.asarray(called)[:, None] == np.array(LABELS))
    return index, probs, truth, called


def test_macro_f1_is_the_unweighted_mean_over_classes(imbalanced):
    index, probs, truth, called = imbalanced
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    assert list(predictions["predicted"]) == called
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    # Fl: precision 8/11, recall 1 -> F1 16/19; Tbn: precision 1, recall 1/2 -> 2/3; Vn: 0.
    assert m["macro_f1"] == pytest.approx((16 / 19 + 2 / 3 + 0) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(truth, called, average="macro"))
    micro = f1_score(truth, called, average="micro")
    assert micro == pytest.approx(9 / 12) == m["file_accuracy"]
    assert abs(m["macro_f1"] - micro) > 0.2  # a micro/macro swap fails
    assert abs(m["macro_f1"] - f1_score(truth, called, average="weighted")) > 0.1


def test_macro_f1_ignores_a_class_neither_true_nor_predicted(imbalanced):
    index, probs, truth, called = imbalanced
    wider = ["Fl", "Ob", "Tbn", "Vn"]
    probs4 = np.insert(probs, 1, 0.0, axis=1)
    m3 = evaluate.metrics(index, probs, evaluate.aggregate(index, probs, labels=LABELS), labels=LABELS)
    m4 = evaluate.metrics(index, probs4, evaluate.aggregate(index, probs4, labels=wider), labels=wider)
    assert m4["macro_f1"] == pytest.approx(m3["macro_f1"])


def test_roc_auc_recomputed_by_its_definition():
    rng = np.random.default_rng(0)
    rows = [(f"{i:02d}.wav", LABELS[i % 3]) for i in range(10)] + [(f"{i:02d}.wav", LABELS[i % 3]) for i in range(4)]
    index = window_index(rows)
    probs = rng.dirichlet(np.ones(3), size=len(rows))
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    auc = evaluate.roc_auc(predictions, labels=LABELS)
    truth = (predictions["label"].to_numpy()[:, None] == np.array(LABELS)).astype(int)
    scores = predictions[P].to_numpy(float)  # file level: means over windows
    macro = np.mean([pairwise_auc(truth[:, k], scores[:, k]) for k in range(3)])
    micro = pairwise_auc(truth.ravel(), scores.ravel())
    assert auc == pytest.approx({"roc_auc_macro": macro, "roc_auc_micro": micro})
    assert evaluate.metrics(index, probs, predictions, labels=LABELS)["roc_auc_macro"] == pytest.approx(macro)


def test_roc_auc_hand_built():
    """Fl column: positives 0.9, 0.4; negatives 0.6, 0.4 -> pairs (win, win, loss, tie) = 2.5/4."""
    index = window_index([("a", "Fl"), ("b", "Fl"), ("c", "Vn"), ("d", "Tbn")])
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.6, 0.0, 0.4], [0.4, 0.6, 0.0]])
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    auc = evaluate.roc_auc(predictions, labels=LABELS)
    # Tbn: positive 0.6 beats 0.05, 0.3, 0.0 -> 1; Vn: positive 0.4 vs 0.05, 0.3, 0.0 -> 1.
    assert auc["roc_auc_macro"] == pytest.approx((2.5 / 4 + 1 + 1) / 3)


def test_absent_class_is_left_out_of_macro_auc(small):
    """Vn never occurs in the test set: macro AUC averages Fl and Tbn only, micro pools all columns."""
    index, probs = small
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    auc = evaluate.roc_auc(predictions, labels=LABELS)
    truth = evaluate.one_hot(predictions["label"], labels=LABELS)
    scores = predictions[P].to_numpy(float)
    assert auc["roc_auc_macro"] == pytest.approx(np.mean([pairwise_auc(truth[:, k], scores[:, k]) for k in (0, 1)]))
    assert auc["roc_auc_micro"] == pytest.approx(pairwise_auc(truth.ravel(), scores.ravel()))


def test_single_class_test_set_omits_macro_auc_and_stays_finite():
    index = window_index([("a.wav", "Fl"), ("b.wav", "Fl")])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    assert "roc_auc_macro" not in m
    assert m["roc_auc_micro"] == pytest.approx(pairwise_auc(np.array([1, 0, 0, 1, 0, 0]), probs.ravel()))
    assert m["file_accuracy"] == 0.5 and all(math.isfinite(v) for v in m.values())


def test_perfect_predictions_score_one():
    index = window_index([("a.wav", "Fl"), ("b.wav", "Tbn"), ("c.wav", "Vn"), ("c.wav", "Vn")])
    probs = np.eye(3)[[0, 1, 2, 2]] * 0.9 + 0.1 / 3
    m = evaluate.metrics(index, probs, evaluate.aggregate(index, probs, labels=LABELS), labels=LABELS)
    keys = ["file_accuracy", "window_accuracy", "macro_f1", "roc_auc_macro", "roc_auc_micro"]
    assert [m[k] for k in keys] == [1.0] * 5


def test_metrics_refuse_an_empty_predictions_table(small):
    index, probs = small
    empty = evaluate.aggregate(index, probs, labels=LABELS).iloc[:0]
    with pytest.raises(DataError, match="predictions table is empty"):
        evaluate.metrics(index, probs, empty, labels=LABELS)


@pytest.mark.parametrize(("column", "value"), [("library", "B"), ("label", "Fl"), ("fold", 3)])
def test_windows_of_one_note_that_disagree_are_refused_naming_the_note_and_column(small, column, value):
    """A note's windows must agree on library, label and fold, or its row would take the first window's."""
    index, probs = small
    mixed = index.copy()
    mixed.loc[2, column] = value  # one of b.wav's three windows
    with pytest.raises(DataError, match=rf"\['b\.wav'\] have windows with different {column}"):
        evaluate.aggregate(mixed, probs, labels=LABELS)


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_messages_say_what_is_wrong_exactly(small):
    index, probs = small
    with pytest.raises(ParameterError) as info:
        evaluate.aggregate(index, probs, labels=[])
    assert str(info.value) == "labels must name at least one class, got []"
    with pytest.raises(DataError) as info:
        evaluate.aggregate(index.iloc[:0], probs[:0], labels=LABELS)
    assert str(info.value) == "window index is empty: nothing to evaluate"
    with pytest.raises(DataError) as info:
        evaluate.aggregate(index, np.where(probs == 0.0, np.inf, probs), labels=LABELS)
    assert str(info.value) == "probs holds NaN or infinite values"
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    with pytest.raises(DataError) as info:
        evaluate.metrics(index, probs, predictions.iloc[:0], labels=LABELS)
    assert str(info.value) == "predictions table is empty: nothing to evaluate"


def test_a_note_of_one_window_is_its_window_and_the_set_defaults_to_test():
    index = window_index([("a.wav", "Vn")])
    out = evaluate.aggregate(index, np.array([[0.2, 0.3, 0.5]]), labels=LABELS)
    assert out["set"].tolist() == ["test"] and out["predicted"].tolist() == ["Vn"]
    assert out[P].to_numpy().tolist() == [[0.2, 0.3, 0.5]] and out["n_windows"].tolist() == [1]


def test_float32_model_outputs_are_averaged_in_double_precision():
    """The model's softmax is float32; the note's mean (written to the predictions CSV) is taken in float64."""
    index = window_index([("a.wav", "Fl")] * 3)
    probs = np.array([[0.1, 0.3, 0.6], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]], np.float32)
    out = evaluate.aggregate(index, probs, labels=LABELS)
    assert (out[P].dtypes == np.float64).all()
    assert out[P].to_numpy()[0].tolist() == probs.astype(np.float64).mean(axis=0).tolist()


def test_many_mixed_notes_are_named_five_at_most():
    rows = [(f"n{i}.wav", lab) for i in range(7) for lab in ("Fl", "Vn")]
    with pytest.raises(DataError) as info:
        evaluate.aggregate(window_index(rows), np.full((14, 3), 1 / 3), labels=LABELS)
    assert "['n0.wav', 'n1.wav', 'n2.wav', 'n3.wav', 'n4.wav'] have windows with different label" in str(info.value)


def test_probability_columns_names_the_missing_ones(small):
    predictions = evaluate.aggregate(*small, labels=LABELS).drop(columns=["p_Vn"])
    with pytest.raises(DataError) as info:
        evaluate.probabilities(predictions, labels=LABELS)
    assert str(info.value) == "predictions lack probability column(s) ['p_Vn']"


def test_roc_auc_of_one_file_and_of_one_class():
    one_file = pd.DataFrame({"label": ["Fl"], "p_Fl": [0.8], "p_Tbn": [0.1], "p_Vn": [0.1]})
    assert evaluate.roc_auc(one_file, labels=LABELS) == {"roc_auc_micro": 1.0}  # no class has both kinds: no macro
    one_class = pd.DataFrame({"label": ["Fl", "Fl"], "p_Fl": [1.0, 1.0]})
    assert evaluate.roc_auc(one_class, labels=["Fl"]) == {}  # undefined, not an error
