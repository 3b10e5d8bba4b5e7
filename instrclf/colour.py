"""A recording chain's colouring of the spectrum, and its removal (``train.library_colour``).

Every sample library (or microphone, room and converter of a user's recordings) tilts and
bends the spectrum of all its notes alike. Averaged over a library's windows and frames, the
log-mel spectrum holds that colouring plus the average of its instruments; a polynomial of
low degree fitted across the mel bands keeps the broad colouring and little of any one
instrument. Training replaces each library's colouring by the training libraries' average
(:func:`shifts`): the model learns instruments without its library's tint, and a set of
recordings from a chain it never heard can be brought to the same reference first
(``instrclf classify --as-set``; the held-out library in ``predict@``). Only the library's
own windows are used, never their labels.
"""

import numpy as np

from .errors import DataError

#: The file of the features folder that holds each library's mean spectrum.
SPECTRA_FILE = "library_spectra.json"


class MeanSpectra:
    """Running mean log-mel spectrum (over windows and frames) per library, batch by batch."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, spectrograms: np.ndarray, libraries) -> None:
        """Add windows ``(n, frames, n_mels, 1)`` of ``libraries`` (one name per window)."""
        libraries = np.asarray(libraries, dtype=object)
        for library in np.unique(libraries):
            rows = spectrograms[libraries == library]
            self._accumulate(library, rows.sum(axis=(0, 1, 3), dtype=np.float64), rows.shape[0] * rows.shape[1])

    def update(self, other: "MeanSpectra") -> None:
        """Add everything ``other`` has gathered."""
        for library, total in other.sums.items():
            self._accumulate(library, total, other.counts[library])

    def _accumulate(self, library, total, count: int) -> None:
        self.sums[library] = self.sums.get(library, 0.0) + total
        self.counts[library] = self.counts.get(library, 0) + count

    def means(self) -> dict:
        """Library -> mean spectrum, one float per mel band (dB), libraries sorted."""
        return {str(lib): [round(float(v), 6) for v in self.sums[lib] / self.counts[lib]] for lib in sorted(self.sums)}


def mean_spectrum(spectrograms: np.ndarray) -> np.ndarray:
    """The mean over windows and frames of ``(n, frames, n_mels, 1)`` spectrograms: ``(n_mels,)`` float64."""
    spectra = MeanSpectra()
    spectra.add(np.asarray(spectrograms), ["set"] * len(spectrograms))
    return np.asarray(spectra.means()["set"])


def colouring(spectrum, degree: int) -> np.ndarray:
    """The broad shape of a mean spectrum: the polynomial of ``degree`` over the band numbers fitted to it."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    bands = np.arange(len(spectrum))
    if len(spectrum) <= degree:
        raise DataError(f"a colouring of degree {degree} needs more than {degree} mel bands, got {len(spectrum)}")
    return np.polyval(np.polyfit(bands, spectrum, degree), bands)


def reference(spectra: dict, libraries, degree: int) -> np.ndarray:
    """The average colouring of ``libraries`` (the training libraries): what every library is brought to."""
    missing = sorted(set(libraries) - set(spectra))
    if missing:
        raise DataError(f"no mean spectrum for libraries {missing} (re-run the features stage: dvc repro features)")
    return np.mean([colouring(spectra[lib], degree) for lib in sorted(set(libraries))], axis=0)


def shift(spectrum, *, degree: int, target) -> np.ndarray:
    """What to add to every frame of a set whose mean spectrum is ``spectrum`` to give it colouring ``target``."""
    return (np.asarray(target, dtype=np.float64) - colouring(spectrum, degree)).astype(np.float32)


def shifts(spectra: dict, *, degree: int, target) -> dict:
    """Library -> the shift (:func:`shift`) that gives it colouring ``target``."""
    return {lib: shift(spectrum, degree=degree, target=target) for lib, spectrum in spectra.items()}
