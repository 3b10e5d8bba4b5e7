"""The features stage's folder: every window's spectrogram, computed once (instrclf.features, instrclf.layout)."""

import json
import shutil

import numpy as np
import pytest
from synthetic import TINY_PARAMS, make_clean_dir, tiny_settings

from instrclf import data, features, layout
from instrclf.errors import DataError
from instrclf.features import frontend

CLEAN, FEATURES = tiny_settings()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    clean_dir = make_clean_dir(root / "clean")
    figures = features.run(clean_dir, root / "features", clean=CLEAN, features=FEATURES, progress=False)
    return clean_dir, root / "features", figures


def copy_of(features_dir, dest):
    """A copy of a features folder, to damage."""
    return shutil.copytree(features_dir, dest)


def test_row_i_is_the_front_ends_output_for_window_i(made):
    clean_dir, features_dir, figures = made
    index = layout.read_index(clean_dir)
    cache = features.Features(features_dir, clean=CLEAN, features=FEATURES)
    assert cache.index.equals(index)
    front = frontend(clean=CLEAN, features=FEATURES)
    x = data.load_windows(clean_dir, index, n_samples=CLEAN.window_length)
    np.testing.assert_array_equal(cache.spectrograms, features.spectrograms(front, x))
    assert figures["windows"] == len(index) and cache.spectrograms.shape[1:] == front.output_shape[1:]
    assert sorted(p.name for p in features_dir.iterdir()) == ["features.json", "index.csv", "library_spectra.json",
                                                               "spectrograms.npy"]


def test_each_librarys_mean_spectrum_is_written_beside_the_spectrograms(made):
    _, features_dir, _ = made
    cache = features.Features(features_dir, clean=CLEAN, features=FEATURES)
    spectra = cache.library_spectra()
    assert sorted(spectra) == sorted(cache.index["library"].unique()) and len(spectra) >= 2
    for library, spectrum in spectra.items():
        rows = cache.spectrograms[(cache.index["library"] == library).to_numpy()]
        np.testing.assert_allclose(spectrum, rows.mean(axis=(0, 1, 3), dtype=np.float64), atol=1e-5)
    assert not np.allclose(*list(spectra.values())[:2])  # per library, not one mean for all


def test_a_selection_with_shifts_adds_each_rows_library_shift_to_every_frame(made):
    _, features_dir, _ = made
    cache = features.Features(features_dir, clean=CLEAN, features=FEATURES)
    rows = cache.index.sample(9, random_state=2)
    libraries = sorted(cache.index["library"].unique())
    shifts = {lib: np.linspace(k, k + 1, FEATURES.n_mels).astype(np.float32) * (k + 1) for k, lib in enumerate(libraries)}
    picked = np.array([4, 0, 7, 7])
    got = cache.select(rows, shifts=shifts).read(picked)
    plain = cache.take(rows)[picked]
    for i, row in enumerate(rows.iloc[picked].itertuples()):
        np.testing.assert_allclose(got[i] - plain[i], np.broadcast_to(shifts[row.library][None, :, None], plain[i].shape),
                                   atol=1e-4)
    np.testing.assert_array_equal(cache.select(rows).read(picked), plain)  # no shifts: the file's values
    with pytest.raises(DataError, match=rf"no colour shift for libraries \['{libraries[1]}'\]"):
        cache.select(cache.index, shifts={lib: shifts[lib] for lib in libraries if lib != libraries[1]})


@pytest.mark.parametrize("damage", [lambda v: v[:-1], lambda v: v[:-1] + [float("nan")], lambda v: "loud"])
def test_a_library_spectrum_of_the_wrong_length_or_not_finite_is_refused_naming_the_file(made, tmp_path, damage):
    _, features_dir, _ = made
    copy = copy_of(features_dir, tmp_path / "f")
    spectra = json.loads((copy / "library_spectra.json").read_text())
    library = sorted(spectra)[0]
    (copy / "library_spectra.json").write_text(json.dumps(spectra | {library: damage(spectra[library])}))
    cache = features.Features(copy, clean=CLEAN, features=FEATURES)
    with pytest.raises(DataError, match=rf"library_spectra.json: library '{library}': expected {FEATURES.n_mels} finite "
                                        r"values, one per mel band \(re-run the features stage"):
        cache.library_spectra()


def test_missing_library_spectra_name_the_stage_to_rerun(made, tmp_path):
    _, features_dir, _ = made
    copy = copy_of(features_dir, tmp_path / "f")
    (copy / "library_spectra.json").unlink()
    cache = features.Features(copy, clean=CLEAN, features=FEATURES)
    with pytest.raises(DataError, match="library_spectra.json: not found .*dvc repro features"):
        cache.library_spectra()


def test_take_selects_by_window_in_the_rows_order(made):
    _, features_dir, _ = made
    cache = features.Features(features_dir, clean=CLEAN, features=FEATURES)
    rows = cache.index.sample(7, random_state=1)  # shuffled, not contiguous
    positions = [int(np.flatnonzero(cache.index["window"] == w)[0]) for w in rows["window"]]
    np.testing.assert_array_equal(cache.take(rows), cache.spectrograms[positions])
    assert cache.take(rows.iloc[:0]).shape == (0, *cache.spectrograms.shape[1:])


def test_the_same_windows_give_byte_identical_files(made, tmp_path):
    clean_dir, features_dir, _ = made
    features.run(clean_dir, tmp_path / "again", clean=CLEAN, features=FEATURES, progress=False)
    for name in ("spectrograms.npy", "index.csv", "features.json", "library_spectra.json"):
        assert (tmp_path / "again" / name).read_bytes() == (features_dir / name).read_bytes(), name


def test_features_of_other_settings_are_refused(made):
    _, features_dir, _ = made
    other = FEATURES.model_copy(update={"n_mels": FEATURES.n_mels * 2})
    with pytest.raises(DataError, match=r"features\.json: the spectrograms were made with .*: run the features stage"):
        features.Features(features_dir, clean=CLEAN, features=other)


def test_a_missing_folder_names_the_stage_to_run(tmp_path):
    with pytest.raises(DataError, match=r"features\.json: not found \(run the features stage first: dvc repro features\)"):
        features.Features(tmp_path / "nowhere", clean=CLEAN, features=FEATURES)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: np.save(d / "spectrograms.npy", np.zeros((3, 2, 2, 1), np.float32)), r"spectrograms\.npy: float32 array of shape \(3, 2, 2, 1\)"),
        (lambda d: np.save(d / "spectrograms.npy", np.zeros((1, 2), np.float64)), r"spectrograms\.npy: float64 array"),
        (lambda d: (d / "spectrograms.npy").write_bytes(b"not numpy"), r"spectrograms\.npy: not a spectrogram array"),
        (lambda d: (d / "spectrograms.npy").unlink(), r"spectrograms\.npy: not found"),
        (lambda d: (d / "features.json").write_text("{", encoding="utf-8"), r"features\.json: unreadable"),
    ],
)
def test_a_damaged_folder_is_refused_naming_the_file(made, tmp_path, damage, match):
    _, features_dir, _ = made
    copy = copy_of(features_dir, tmp_path / "features")
    damage(copy)
    with pytest.raises(DataError, match=match):
        features.Features(copy, clean=CLEAN, features=FEATURES)


def test_a_card_whose_shape_disagrees_is_refused(made, tmp_path):
    _, features_dir, _ = made
    copy = copy_of(features_dir, tmp_path / "features")
    card = json.loads((copy / "features.json").read_text())
    card["shape"][1] += 1
    (copy / "features.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=r"spectrograms\.npy: shape .* its card says"):
        features.Features(copy, clean=CLEAN, features=FEATURES)


def test_a_bad_shard_fails_before_anything_is_written(tmp_path):
    clean_dir = make_clean_dir(tmp_path / "clean", params=TINY_PARAMS)
    victim = layout.shard_path(clean_dir, layout.read_index(clean_dir)["shard"].iloc[-1])
    victim.write_bytes(b"RIFF broken")
    with pytest.raises(DataError, match=f"{victim}: not a .npy array"):
        features.run(clean_dir, tmp_path / "features", clean=CLEAN, features=FEATURES, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean"]  # no folder, no temporary


@pytest.mark.parametrize(
    "change",
    [{"threshold_db": -50.0}, {"envelope_ms": 20.0}, {"sample_rate": 16000, "delta_time": 0.25}],
    ids=["threshold", "envelope", "rate-same-length"],
)
def test_features_of_other_clean_settings_are_refused(made, change):
    """Windows cut with another threshold or envelope give spectrograms of the same shape: only the record tells."""
    _, features_dir, _ = made
    other = CLEAN.model_copy(update=change)
    assert other.window_length == CLEAN.window_length
    with pytest.raises(DataError, match=r"features\.json: the spectrograms were made with .*: run the features stage"):
        features.Features(features_dir, clean=other, features=FEATURES)


def test_an_index_longer_than_one_chunk_gives_every_row_its_window(made, tmp_path, monkeypatch):
    """Real sets have thousands of windows, many chunks of INFERENCE_BATCH: here 9 windows in chunks of 4."""
    clean_dir, _, _ = made
    subset = copy_of(clean_dir, tmp_path / "clean")
    index = layout.read_index(clean_dir).iloc[::-13].head(9).reset_index(drop=True)
    layout.write_index(subset, index)
    monkeypatch.setattr(features, "INFERENCE_BATCH", 4)
    features.run(subset, tmp_path / "features", clean=CLEAN, features=FEATURES, progress=False)
    cache = features.Features(tmp_path / "features", clean=CLEAN, features=FEATURES)
    front = frontend(clean=CLEAN, features=FEATURES)
    expected = features.spectrograms(front, data.load_windows(subset, index, n_samples=CLEAN.window_length))
    np.testing.assert_array_equal(cache.spectrograms, expected)


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_the_figures_give_the_spectrogram_files_shape_and_size(made):
    """The stage's metrics: windows, frames, mel bands, and the array's megabytes (float32: 4 bytes a value)."""
    _, features_dir, figures = made
    array = np.load(layout.features_array(features_dir), mmap_mode="r")
    assert (figures["windows"], figures["frames"], figures["n_mels"]) == array.shape[:3]
    assert figures["megabytes"] == round(array.nbytes / 2**20, 1) > 0


def test_batches_with_stored_give_each_batch_shifted_and_as_stored_from_one_read(tmp_path):
    from instrclf.features import Selection

    class Rows:
        row_shape = (2, 3, 1)
        reads = 0

        def read(self, positions):
            Rows.reads += 1
            return np.stack([np.full(self.row_shape, float(p), np.float32) for p in positions])

    table = np.array([[0.0, 1.0, 2.0], [10.0, 20.0, 30.0]], np.float32)
    sel = Selection(Rows(), [4, 1, 3], codes=np.array([1, 0, 1], np.int32), table=table)
    pairs = list(sel.batches(2, with_stored=True))
    assert Rows.reads == 2 and [len(s) for s, _ in pairs] == [2, 1]
    shifted = np.concatenate([s for s, _ in pairs])
    stored = np.concatenate([t for _, t in pairs])
    np.testing.assert_array_equal(stored[:, 0, :, 0], [[4, 4, 4], [1, 1, 1], [3, 3, 3]])
    np.testing.assert_array_equal(shifted, stored + table[[1, 0, 1]][:, None, :, None])
    np.testing.assert_array_equal(shifted, np.concatenate(list(sel.batches(2))))
