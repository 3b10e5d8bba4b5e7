"""The kapre mel front end, and its spectrograms of every clean window, computed once for every model and fold.

The front end (:func:`frontend`) has no trainable weights, so its output for a window
never changes: the ``features`` stage computes it once per window and every ``train@``
and ``predict@`` stage reads the array (:class:`Features`) instead of reading the windows
and recomputing their spectrograms. The models saved for users still take raw audio: they
carry the same front end (:func:`instrclf.models.assemble`; tests/test_models.py checks
that the two agree). No back end is imported here, so editing a model reruns no features.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from .runtime import tf  # noqa: F401  (TensorFlow imported quietly, before keras)

import keras  # noqa: E402
from kapre.composed import get_melspectrogram_layer

from . import colour, layout
from .errors import DataError
from .io import atomic_dir, read_text, write_json
from .runtime import filtered_stderr
from .settings import INFERENCE_BATCH  # windows per model call: memory and speed only, never results
from .settings import CleanSettings, FeatureSettings


def frontend(*, clean: CleanSettings, features: FeatureSettings) -> keras.Model:
    """The kapre log-mel front end: raw audio ``(n_samples, 1)`` -> ``(frames, n_mels, 1)`` in dB.

    Parameters
    ----------
    clean : CleanSettings
        Gives the window length and sample rate of the input.
    features : FeatureSettings
        Mel settings.

    Returns
    -------
    keras.Model
        No trainable weights.
    """
    inputs = keras.Input((clean.window_length, 1), name="audio")
    mel = get_melspectrogram_layer(
        n_fft=features.n_fft,
        win_length=features.win_length,
        hop_length=features.hop_length,
        sample_rate=clean.sample_rate,
        n_mels=features.n_mels,
        pad_end=True,
        return_decibel=True,
        input_data_format="channels_last",
        output_data_format="channels_last",
        name="melspectrogram",
    )(inputs)
    return keras.Model(inputs, mel, name="frontend")


def settings_of(clean: CleanSettings, features: FeatureSettings) -> dict:
    """What shapes a spectrogram: recorded beside the array and checked by every reader."""
    return {"clean": clean.model_dump(), "features": features.model_dump()}


def spectrograms(front, x: np.ndarray) -> np.ndarray:
    """The front end's output for windows ``x`` ``(n, samples, 1)``: ``(n, frames, n_mels, 1)`` float32."""
    if len(x) == 0:
        return np.zeros((0, *front.output_shape[1:]), dtype=np.float32)
    with filtered_stderr():
        return front.predict(x, batch_size=INFERENCE_BATCH, verbose=0).astype(np.float32, copy=False)


def run(clean_dir, out_dir, *, clean: CleanSettings, features: FeatureSettings, progress: bool = True) -> dict:
    """Compute every window's spectrogram and write the features folder ``out_dir`` (replaced on success).

    Windows are read from the clean shards and spectrograms written to the array file
    batch by batch (:data:`INFERENCE_BATCH` windows): memory does not grow with the data.
    Each library's mean spectrum (:class:`instrclf.colour.MeanSpectra`) is gathered on the way
    and written beside them (:data:`instrclf.colour.SPECTRA_FILE`).

    Returns
    -------
    dict
        Flat figures: windows, frames, mel bands, megabytes written.
    """
    from tqdm import tqdm

    index = layout.read_index(clean_dir)
    windows = layout.Windows(clean_dir, index, n_samples=clean.window_length)  # every shard checked before any work
    front = frontend(clean=clean, features=features)
    row_shape = tuple(front.output_shape[1:])
    bar = tqdm(total=len(index), unit="window", desc="features", disable=None if progress else True, mininterval=1.0)
    spectra = colour.MeanSpectra()

    def batches():
        for start in range(0, len(index), INFERENCE_BATCH):
            rows = index.iloc[start : start + INFERENCE_BATCH]
            batch = spectrograms(front, windows.read(rows))
            spectra.add(batch, rows["library"].to_numpy())
            yield batch
            bar.update(len(rows))

    with bar, atomic_dir(out_dir) as tmp:
        layout.write_features(tmp, index, batches(), settings_of(clean, features), row_shape=row_shape)
        write_json(tmp / colour.SPECTRA_FILE, spectra.means())
    megabytes = len(index) * int(np.prod(row_shape)) * 4 / 2**20
    return {"windows": len(index), "frames": row_shape[0], "n_mels": row_shape[1], "megabytes": round(megabytes, 1)}


class Features:
    """The features folder: its index, and the spectrograms of any rows, read from the file as needed.

    Attributes
    ----------
    index : pandas.DataFrame
        One row per window.
    spectrograms : numpy.ndarray
        The whole array, memory-mapped read-only (for a look; :meth:`take` for reading).
    """

    def __init__(self, features_dir, *, clean: CleanSettings, features: FeatureSettings):
        self.directory = Path(features_dir)
        self.index, self.spectrograms = layout.read_features(features_dir, settings=settings_of(clean, features))
        self.rows = layout.NpyRows(layout.features_array(features_dir))
        self._row = pd.Series(np.arange(len(self.index)), index=self.index["window"].to_numpy())

    def library_spectra(self) -> dict:
        """Library -> its mean spectrum (one value per mel band, dB), as the features stage wrote it."""
        path = self.directory / colour.SPECTRA_FILE
        text = read_text(path, missing="not found (re-run the features stage: dvc repro features)", what="mean spectra")
        spectra = layout.parse_json(text, name=path)
        missing = sorted(set(self.index["library"]) - set(spectra))
        if missing:
            raise DataError(f"{path}: no mean spectrum for libraries {missing} (re-run the features stage: dvc repro features)")
        n_mels = self.row_shape[1]
        for lib, values in spectra.items():
            if not isinstance(values, list) or len(values) != n_mels or not np.isfinite(np.asarray(values, dtype=float)).all():
                raise DataError(f"{path}: library {lib!r}: expected {n_mels} finite values, one per mel band "
                                "(re-run the features stage: dvc repro features)")
        return {lib: np.asarray(values, dtype=np.float64) for lib, values in spectra.items()}

    @property
    def row_shape(self) -> tuple:
        """One spectrogram's shape: ``(frames, n_mels, 1)``."""
        return self.rows.row_shape

    def positions(self, rows) -> np.ndarray:
        """Row numbers in the array of index rows ``rows`` (a subset of :attr:`index`, any order)."""
        return self._row.loc[rows["window"].to_numpy()].to_numpy(dtype=np.int64)

    def select(self, rows, *, shifts=None) -> "Selection":
        """The spectrograms of index rows ``rows`` as a :class:`Selection`: read only when asked for.

        ``shifts`` (library -> one value per mel band, :func:`instrclf.colour.shifts`) is added
        to every frame of each row of that library as it is read; ``None`` adds nothing.
        """
        if shifts is None:
            return Selection(self.rows, self.positions(rows))
        libraries = sorted(shifts)
        missing = sorted(set(rows["library"]) - set(libraries))
        if missing:
            raise DataError(f"no colour shift for libraries {missing}")
        codes = pd.Categorical(rows["library"], categories=libraries)
        table = np.stack([np.asarray(shifts[lib], dtype=np.float32) for lib in libraries])
        return Selection(self.rows, self.positions(rows), codes=codes.codes.astype(np.int32), table=table)

    def take(self, rows) -> np.ndarray:
        """The spectrograms of index rows ``rows`` (a subset of :attr:`index`, any order), in memory."""
        return self.rows.read(self.positions(rows))


class Selection:
    """Some rows of the spectrogram file, in a chosen order, read on demand (training and prediction batches).

    ``len`` and ``shape`` are those of the array the rows would make; :meth:`read` reads some of them.
    """

    def __init__(self, rows: "layout.NpyRows", positions: np.ndarray, *, codes=None, table=None):
        self._rows, self.positions = rows, np.asarray(positions, dtype=np.int64)
        self.shape = (len(self.positions), *rows.row_shape)
        self._codes, self._table = codes, table  # per row a shift's number, and the shifts (n, n_mels)

    def __len__(self) -> int:
        return len(self.positions)

    def read(self, indices) -> np.ndarray:
        """Rows ``indices`` (positions in this selection) as float32, in that order, shifted if asked."""
        return self._read(np.asarray(indices, dtype=np.int64))[0]

    def _read(self, indices: np.ndarray) -> tuple:
        """Rows ``indices`` read once: (shifted if asked, as stored)."""
        stored = self._rows.read(self.positions[indices])
        if self._table is None:
            return stored, stored
        return stored + self._table[self._codes[indices]][:, None, :, None], stored

    def batches(self, size: int, *, with_stored: bool = False):
        """The whole selection in order, ``size`` rows at a time.

        With ``with_stored`` each batch is a pair read once: (the rows shifted, the rows as stored).
        """
        for start in range(0, len(self), size):
            shifted, stored = self._read(np.arange(start, min(start + size, len(self))))
            yield (shifted, stored) if with_stored else shifted
