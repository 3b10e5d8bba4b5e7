import copy

import numpy as np
import pytest
import soundfile as sf
from synthetic import TINY_PARAMS, make_clean_dir

from instrclf import data
from instrclf.errors import DataError, ParameterError


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    return make_clean_dir(tmp_path_factory.mktemp("clean"))


def test_split_defaults_train_on_the_other_three_folds():
    split = data.Split.from_params(TINY_PARAMS)
    assert (split.test_fold, split.val_fold, split.train_folds) == (0, 1, (2, 3, 4))


@pytest.mark.parametrize(
    ("test_fold", "val_fold", "match"),
    [(5, 1, "split.test_fold must be one of"), (0, -1, "split.val_fold must be one of"), (2, 2, "must differ")],
)
def test_split_rejects_bad_folds(test_fold, val_fold, match):
    params = copy.deepcopy(TINY_PARAMS)
    params["split"] = {"test_fold": test_fold, "val_fold": val_fold}
    with pytest.raises(ParameterError, match=match):
        data.Split.from_params(params)


def test_folds_never_share_a_note(clean_dir):
    index = data.read_index(clean_dir)
    split = data.Split.from_params(TINY_PARAMS)
    parts = [set(data.select_folds(index, f)["Path"]) for f in ([split.test_fold], [split.val_fold], split.train_folds)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sum(map(len, parts)) == index["Path"].nunique()


def test_labels_are_sorted_from_the_data(clean_dir):
    index = data.read_index(clean_dir)
    assert data.labels_of(index) == ["Fl", "Tbn", "Vn"]
    np.testing.assert_array_equal(data.encode(["Vn", "Fl"], ["Fl", "Tbn", "Vn"]), [2, 0])
    with pytest.raises(DataError, match=r"\['Ob'\]"):
        data.encode(["Ob"], ["Fl", "Tbn", "Vn"])


def test_load_windows_shape_and_values(clean_dir):
    index = data.read_index(clean_dir).head(4)
    x = data.load_windows(clean_dir, index, n_samples=4000)
    assert x.shape == (4, 4000, 1) and x.dtype == np.float32
    y, _ = sf.read(clean_dir / index["window"][0], dtype="float32")
    np.testing.assert_array_equal(x[0, :, 0], y)


def test_load_windows_names_a_window_of_the_wrong_length(clean_dir):
    index = data.read_index(clean_dir).head(2)
    with pytest.raises(DataError, match=index["window"][0]):
        data.load_windows(clean_dir, index, n_samples=8000)


def test_read_index_errors(tmp_path):
    with pytest.raises(DataError, match="index.csv not found"):
        data.read_index(tmp_path)
    (tmp_path / "index.csv").write_text("window,Path\na.wav,b.wav\n")
    with pytest.raises(DataError, match="lacks columns"):
        data.read_index(tmp_path)


def test_select_missing_fold_is_an_error(clean_dir):
    index = data.read_index(clean_dir)
    with pytest.raises(DataError, match=r"no windows in fold\(s\) \[7\]"):
        data.select_folds(index, [7])
