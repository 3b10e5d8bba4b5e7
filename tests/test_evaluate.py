import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from instrclf import evaluate
from instrclf.errors import DataError, ParameterError

LABELS = ["Fl", "Tbn", "Vn"]


def window_index(rows):
    """A window index from (Path, label) pairs, one row per window, in the given order."""
    return pd.DataFrame(
        [
            {"window": f"w{i}.wav", "Path": p, "instrument": lab, "family": "F", "label": lab, "fold": 0,
             "window_index": i}
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


def test_aggregate_is_the_mean_of_each_notes_windows(small):
    index, probs = small
    out = evaluate.aggregate(index, probs, labels=LABELS)
    assert list(out.columns) == ["Path", "fold", "label", "predicted", "n_windows", "p_Fl", "p_Tbn", "p_Vn"]
    assert list(out["Path"]) == ["a.wav", "b.wav"]  # sorted, whatever the window order
    b = out.set_index("Path").loc["b.wav"]
    np.testing.assert_allclose(b[["p_Fl", "p_Tbn", "p_Vn"]].to_numpy(float), [1.15 / 3, 1.80 / 3, 0.05 / 3])
    assert (b["label"], b["predicted"], b["n_windows"], b["fold"]) == ("Tbn", "Tbn", 3, 0)
    assert list(out["n_windows"]) == [1, 3]


def test_aggregate_ignores_the_frames_own_index(small):
    """After selecting a fold the DataFrame index is not 0..n-1: rows still pair with probs by position."""
    index, probs = small
    shuffled = index.set_axis([10, 3, 7, 1])
    pd.testing.assert_frame_equal(
        evaluate.aggregate(shuffled, probs, labels=LABELS), evaluate.aggregate(index, probs, labels=LABELS)
    )


def test_window_wrong_but_file_right(small):
    index, probs = small
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    assert m["file_accuracy"] == 1.0
    assert m["window_accuracy"] == pytest.approx(2 / 4)
    assert (m["n_files"], m["n_windows"]) == (2, 4)


def test_metrics_keys_are_flat_finite_numbers(small):
    index, probs = small
    m = evaluate.metrics(index, probs, evaluate.aggregate(index, probs, labels=LABELS), labels=LABELS)
    assert set(m) == {
        "file_accuracy", "window_accuracy", "macro_f1", "roc_auc_macro", "roc_auc_micro", "n_files", "n_windows"
    }
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in m.values())


def test_absent_class_is_left_out_of_macro_auc(small):
    """Vn never occurs in the test set: macro AUC averages Fl and Tbn only, micro pools all columns."""
    index, probs = small
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    auc = evaluate.roc_auc(predictions, labels=LABELS)
    truth = evaluate.one_hot(predictions["label"], labels=LABELS)
    scores = predictions[["p_Fl", "p_Tbn", "p_Vn"]].to_numpy(float)
    expected_macro = np.mean([roc_auc_score(truth[:, k], scores[:, k]) for k in (0, 1)])
    assert auc["roc_auc_macro"] == pytest.approx(expected_macro)
    assert auc["roc_auc_micro"] == pytest.approx(roc_auc_score(truth.ravel(), scores.ravel()))


def test_macro_auc_matches_sklearn_when_every_class_is_present():
    rng = np.random.default_rng(0)
    rows = [(f"{i:02d}.wav", LABELS[i % 3]) for i in range(30)]
    index = window_index(rows)
    probs = rng.dirichlet(np.ones(3), size=len(rows))
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    auc = evaluate.roc_auc(predictions, labels=LABELS)
    y = predictions["label"].to_numpy()
    p = predictions[["p_Fl", "p_Tbn", "p_Vn"]].to_numpy(float)
    assert auc["roc_auc_macro"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=LABELS))


def test_single_class_test_set_omits_macro_auc_and_stays_finite():
    index = window_index([("a.wav", "Fl"), ("b.wav", "Fl")])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    predictions = evaluate.aggregate(index, probs, labels=LABELS)
    m = evaluate.metrics(index, probs, predictions, labels=LABELS)
    assert "roc_auc_macro" not in m
    assert m["roc_auc_micro"] == pytest.approx(roc_auc_score([1, 0, 0, 1, 0, 0], [0.8, 0.1, 0.1, 0.2, 0.7, 0.1]))
    assert m["file_accuracy"] == 0.5 and all(math.isfinite(v) for v in m.values())


def test_perfect_predictions_score_one():
    index = window_index([("a.wav", "Fl"), ("b.wav", "Tbn"), ("c.wav", "Vn"), ("c.wav", "Vn")])
    probs = np.eye(3)[[0, 1, 2, 2]] * 0.9 + 0.1 / 3
    m = evaluate.metrics(index, probs, evaluate.aggregate(index, probs, labels=LABELS), labels=LABELS)
    keys = ["file_accuracy", "window_accuracy", "macro_f1", "roc_auc_macro", "roc_auc_micro"]
    assert [m[k] for k in keys] == [1.0] * 5


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


def test_predictions_round_trip_through_csv(small, tmp_path):
    index, probs = small
    labels = ["Vn", "Fl", "Tbn"]  # not sorted: the file order is the order read back
    predictions = evaluate.aggregate(index, probs[:, [2, 0, 1]], labels=labels)
    path = tmp_path / "predictions" / "conv1d.csv"
    evaluate.write_predictions(path, predictions)
    back, back_labels = evaluate.read_predictions(path)
    assert back_labels == labels
    pd.testing.assert_frame_equal(back, predictions, check_dtype=False)  # floats exactly, not rounded


def test_numeric_looking_labels_stay_strings(tmp_path):
    index = window_index([("a.wav", "1"), ("b.wav", "2")])
    predictions = evaluate.aggregate(index, np.array([[0.9, 0.1], [0.3, 0.7]]), labels=["1", "2"])
    evaluate.write_predictions(tmp_path / "p.csv", predictions)
    back, labels = evaluate.read_predictions(tmp_path / "p.csv")
    assert labels == ["1", "2"] and list(back["label"]) == ["1", "2"] and list(back["predicted"]) == ["1", "2"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, "not found"),
        ("", "not a readable CSV"),
        ("Path,fold,label,predicted\na.wav,0,Fl,Fl\n", r"lacks column\(s\) \['n_windows'\]"),
        ("Path,fold,label,predicted,n_windows\na.wav,0,Fl,Fl,1\n", "no probability columns"),
        ("Path,fold,label,predicted,n_windows,p_Fl\n", "holds no predictions"),
        ("Path,fold,label,predicted,n_windows,p_Fl,p_Vn\na.wav,0,Fl,Ob,1,0.5,0.5\n", r"\['Ob'\]"),
        ("Path,fold,label,predicted,n_windows,p_Fl,p_Vn\na.wav,0,Fl,Fl,1,x,0.5\n", "must be numbers"),
    ],
)
def test_read_predictions_errors_name_the_file(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as err:
        evaluate.read_predictions(path)
    assert "bad.csv" in str(err.value)
