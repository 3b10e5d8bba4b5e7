"""Fold sets, labels and window loading (instrclf.data)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from synthetic import make_clean_dir

from instrclf import data, layout
from instrclf.errors import DataError, ParameterError


def index_of(libraries=("A", "B", "C"), labels=("Vn", "Fl", "Tbn"), notes_per_fold=2, windows_per_note=2):
    """A window index (no audio): every label x fold x note x library, labels in the given order."""
    rows = []
    for label in labels:
        for fold in range(5):
            for n in range(notes_per_fold):
                for library in libraries:
                    path = f"{label}/{label}-{fold}{n}-{library}.wav"
                    for w in range(windows_per_note):
                        rows.append((f"{path[:-4]}_{w}.wav", path, label, "F", library, label, fold, w, 0, len(rows)))
    return pd.DataFrame(rows, columns=list(layout.INDEX_COLUMNS))


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    return make_clean_dir(tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("test_fold", range(5))
@pytest.mark.parametrize("unseen", ["B", "C"])
def test_fold_sets_of_every_test_fold(test_fold, unseen):
    index = index_of()
    sets = data.fold_sets(index, test_fold=test_fold, unseen_library=unseen)
    val_fold = (test_fold + 1) % 5
    train_folds = set(range(5)) - {test_fold, val_fold}
    assert set(sets.test["fold"]) == {test_fold}
    assert set(sets.val["fold"]) == {val_fold}
    assert set(sets.train["fold"]) == train_folds and len(train_folds) == 3
    # Disjoint, by window and by note, and the unseen library nowhere but in unseen.
    parts = {name: getattr(sets, name) for name in ("train", "val", "test", "unseen")}
    notes = {name: set(part["Path"]) for name, part in parts.items()}
    for a in parts:
        for b in parts:
            if a < b:
                assert not notes[a] & notes[b], (a, b)
    for name in ("train", "val", "test"):
        assert unseen not in set(parts[name]["library"])
        assert set(parts[name]["library"]) == {"A", "B", "C"} - {unseen}
    # unseen: every window of that library, all five folds; the rest covers everything else.
    expected = index[index["library"] == unseen].reset_index(drop=True)
    pd.testing.assert_frame_equal(sets.unseen, expected)
    assert set(sets.unseen["fold"]) == set(range(5))
    assert sum(len(p) for p in parts.values()) == len(index)
    assert sets.unseen_note == ""
    assert all(list(p.index) == list(range(len(p))) for p in parts.values())  # positions pair with arrays


def test_one_library_means_no_unseen_set_and_a_note():
    index = index_of(libraries=("default",))
    sets = data.fold_sets(index, test_fold=2, unseen_library="sf_GMbank")
    assert sets.unseen.empty
    assert "one library (default)" in sets.unseen_note
    assert len(sets.train) + len(sets.val) + len(sets.test) == len(index)


def test_no_unseen_library_keeps_every_library_and_says_so():
    index = index_of(libraries=("A", "B"))
    sets = data.fold_sets(index, test_fold=0, unseen_library=None)
    assert sets.unseen.empty and "split.unseen_library is null" in sets.unseen_note
    assert set(sets.train["library"]) == {"A", "B"}


def test_unknown_unseen_library_names_the_key_and_the_libraries():
    with pytest.raises(ParameterError, match=r"split.unseen_library .*\['A', 'B', 'C'\], got 'Z'"):
        data.fold_sets(index_of(), test_fold=0, unseen_library="Z")


def test_a_family_of_libraries_is_held_out_together():
    """split.unseen_library as a list: every one of its libraries is unseen, the others train, validate and test."""
    index = index_of(libraries=("A", "B", "C", "D"))
    sets = data.fold_sets(index, test_fold=3, unseen_library=["B", "D"])
    assert set(sets.unseen["library"]) == {"B", "D"} and len(sets.unseen) == (index["library"].isin(["B", "D"])).sum()
    for part in (sets.train, sets.val, sets.test):
        assert set(part["library"]) == {"A", "C"}
    assert len(sets.train) + len(sets.val) + len(sets.test) + len(sets.unseen) == len(index)
    # A one-name list is that library alone; names are checked one by one; all of them leave nothing to train on.
    pd.testing.assert_frame_equal(data.fold_sets(index, test_fold=0, unseen_library=["C"]).unseen,
                                  data.fold_sets(index, test_fold=0, unseen_library="C").unseen)
    with pytest.raises(ParameterError, match=r"^split.unseen_library must be one of the data's libraries \['A', 'B', 'C', 'D'\], got \['Z'\]$"):
        data.fold_sets(index, test_fold=0, unseen_library=["B", "Z"])
    with pytest.raises(ParameterError, match=r"^split.unseen_library holds out every library of the data"):
        data.fold_sets(index, test_fold=0, unseen_library=["D", "C", "B", "A"])
    with pytest.raises(ParameterError, match=r"^train.library_weights.D: the held-out library"):
        data.draws_of(sets.train, {"A": 2, "D": 2}, libraries=index["library"], unseen_library=["B", "D"])


@pytest.mark.parametrize("test_fold", [5, -1, True, 1.0])
def test_bad_test_fold(test_fold):
    with pytest.raises(ParameterError, match="test fold must be an integer in 0..4"):
        data.fold_sets(index_of(), test_fold=test_fold, unseen_library="B")


def test_a_missing_fold_names_what_is_missing():
    index = index_of()
    with pytest.raises(DataError, match=r"no val windows for test fold 0: the index has folds \[0, 2, 3, 4\]"):
        data.fold_sets(index[index["fold"] != 1], test_fold=0, unseen_library="B")


def test_labels_are_sorted_not_in_order_of_appearance():
    index = index_of(labels=("Vn", "Fl", "Tbn"))
    assert list(dict.fromkeys(index["label"])) == ["Vn", "Fl", "Tbn"]
    assert data.class_names(index) == ["Fl", "Tbn", "Vn"]
    assert data.class_names(index.iloc[::-1]) == ["Fl", "Tbn", "Vn"]
    np.testing.assert_array_equal(data.encode(["Vn", "Fl", "Vn"], ["Fl", "Tbn", "Vn"]), [2, 0, 2])
    with pytest.raises(DataError, match=r"\['Ob'\] are not among the model's labels"):
        data.encode(["Ob", "Fl"], ["Fl", "Tbn", "Vn"])


def test_load_windows_shape_and_values(clean_dir, tmp_path):
    """Rows in any order, from several shards: each exactly what its 16-bit WAV reads as."""
    index = layout.read_index(clean_dir).iloc[[50, 5, 0, 9, 5]]
    assert index["shard"].nunique() > 1
    x = data.load_windows(clean_dir, index, n_samples=4000)
    assert x.shape == (5, 4000, 1) and x.dtype == np.float32
    for row, rel in enumerate(index["window"]):
        wav = data.write_window(clean_dir, rel, tmp_path / "w.wav", sample_rate=8000)
        y, sr = sf.read(wav, dtype="float32")
        assert sr == 8000
        np.testing.assert_array_equal(x[row, :, 0], y)


def test_load_windows_names_a_shard_of_the_wrong_width(clean_dir):
    index = layout.read_index(clean_dir).head(2)
    with pytest.raises(DataError, match=r"shards/00000\.npy: int16 windows of shape \(4000,\), expected int16 \(8000,\)"):
        data.load_windows(clean_dir, index, n_samples=8000)


def test_load_windows_names_a_missing_shard(clean_dir, tmp_path):
    index = layout.read_index(clean_dir).head(1)
    with pytest.raises(DataError, match=f"{tmp_path}/shards/00000\\.npy: missing"):
        data.load_windows(tmp_path, index, n_samples=4000)


def test_a_row_outside_its_shard_is_one_error_naming_the_file(clean_dir):
    index = layout.read_index(clean_dir).head(3)
    size = len(np.load(clean_dir / "shards" / "00000.npy"))
    index.loc[1, "row"] = size
    with pytest.raises(DataError) as error:
        data.load_windows(clean_dir, index, n_samples=4000)
    assert str(error.value) == (f"{clean_dir / 'shards' / '00000.npy'}: window {index['window'][1]!r} is row {size} "
                                f"of a shard of {size} rows: re-run the clean stage")


def test_a_truncated_shard_is_refused(clean_dir, tmp_path):
    import shutil

    copy = shutil.copytree(clean_dir, tmp_path / "clean")
    shard = copy / "shards" / "00001.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"00001\.npy: truncated"):
        data.load_windows(copy, layout.read_index(copy), n_samples=4000)


def test_write_window_names_an_unknown_window(clean_dir, tmp_path):
    with pytest.raises(DataError, match=r"index\.csv: no window named 'Fl/nothing_0\.wav'"):
        data.write_window(clean_dir, "Fl/nothing_0.wav", tmp_path / "x.wav", sample_rate=8000)


# Mutation run (benchmarks/mutation.py): cases beside the tested ones that mutants survived.


def test_one_library_named_as_unseen_is_still_trained_on():
    """TinySOL or your own set with split.unseen_library set to its only library: nothing may vanish."""
    index = index_of(libraries=("default",))
    sets = data.fold_sets(index, test_fold=1, unseen_library="default")
    assert sets.unseen.empty and len(sets.train) + len(sets.val) + len(sets.test) == len(index)
    assert sets.unseen_note == "the data has one library (default): no unseen-library evaluation"


def test_the_sets_are_rows_of_the_index_with_its_columns_only():
    index = index_of(libraries=("A", "B"))
    sets = data.fold_sets(index, test_fold=0, unseen_library=None)
    assert sets.unseen_note == "split.unseen_library is null: no library is held out"
    for part in (sets.train, sets.val, sets.test):
        assert list(part.columns) == list(index.columns) and list(part.index) == list(range(len(part)))


def test_class_ids_are_int32():
    ids = data.encode(pd.Series(["Vn", "Fl", "Vn"]), ["Fl", "Vn"])
    assert ids.dtype == np.int32 and ids.tolist() == [1, 0, 1]


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_shard_of_another_sample_type_is_refused_naming_it(clean_dir, tmp_path):
    """A float32 shard of the right width (edited, or written by another tool) is an error, never cast into int16 windows."""
    import shutil

    copy = shutil.copytree(clean_dir, tmp_path / "clean")
    shard = copy / "shards" / "00000.npy"
    np.save(shard, np.load(shard).astype(np.float32) / 32768)
    with pytest.raises(DataError, match=r"00000\.npy: float32 windows of shape \(4000,\), expected int16 \(4000,\)"):
        data.load_windows(copy, layout.read_index(copy), n_samples=4000)


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="/proc")
def test_reading_windows_batch_by_batch_leaves_no_file_open(clean_dir):
    """export reads every window batch by batch: thousands of reads must not use up the process's files."""
    import gc

    index = layout.read_index(clean_dir).head(3)
    gc.collect()
    before = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(200):
        data.load_windows(clean_dir, index, n_samples=4000)
    gc.collect()
    assert len(list(Path("/proc/self/fd").iterdir())) <= before + 2


@pytest.mark.parametrize("name", ["w.flac", "w.ogg", "window"])
def test_a_window_is_a_16_bit_wav_whatever_its_files_name(clean_dir, tmp_path, name):
    """instrclf window -o note.flac (or no suffix at all) still writes the documented 16-bit WAV."""
    rel = layout.read_index(clean_dir)["window"].iloc[0]
    info = sf.info(data.write_window(clean_dir, rel, tmp_path / name, sample_rate=8000))
    assert (info.format, info.subtype, info.frames) == ("WAV", "PCM_16", 4000)
