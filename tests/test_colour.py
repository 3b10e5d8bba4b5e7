"""A library's colouring and its removal (instrclf.colour), on spectra whose colouring is known."""

import numpy as np
import pytest

from instrclf import colour
from instrclf.errors import DataError

BANDS = np.arange(40)


def tilt(a, b, c=0.0):
    """A smooth colouring: a quadratic over the band numbers."""
    return a + b * BANDS + c * BANDS**2


def test_mean_spectra_are_per_library_over_windows_and_frames_batch_by_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3, len(BANDS), 1)).astype(np.float32)
    libraries = np.array(["A", "B"] * 5, dtype=object)
    spectra = colour.MeanSpectra()
    spectra.add(x[:3], libraries[:3])  # any batching gives the same means
    spectra.add(x[3:], libraries[3:])
    means = spectra.means()
    assert list(means) == ["A", "B"]
    for lib in means:
        np.testing.assert_allclose(means[lib], x[libraries == lib].mean(axis=(0, 1, 3)), atol=1e-6)
    np.testing.assert_allclose(colour.mean_spectrum(x[libraries == "A"]), means["A"], atol=1e-6)


def test_the_colouring_keeps_the_broad_shape_and_drops_the_fine_one():
    fine = 3.0 * np.sin(BANDS * 2.5)  # harmonics and formants: much faster than a polynomial of degree 3
    got = colour.colouring(tilt(-30, 0.4, -0.01) + fine, 3)
    np.testing.assert_allclose(got, tilt(-30, 0.4, -0.01), atol=0.6)
    np.testing.assert_allclose(colour.colouring(tilt(1, 2), 1), tilt(1, 2), atol=1e-9)
    with pytest.raises(DataError, match="degree 5 needs more than 5 mel bands, got 4"):
        colour.colouring(np.zeros(4), 5)


def test_shifts_bring_every_library_to_the_training_libraries_average():
    instruments = 2.0 * np.cos(BANDS * 1.7)
    spectra = {"A": tilt(-40, 0.2) + instruments, "B": tilt(-20, -0.3, 0.01) + instruments, "held": tilt(-60, 0.9) + instruments}
    target = colour.reference(spectra, {"A", "B"}, 2)
    np.testing.assert_allclose(target, (tilt(-40, 0.2) + tilt(-20, -0.3, 0.01)) / 2, atol=0.3)
    shifts = colour.shifts(spectra, degree=2, target=target)
    assert set(shifts) == {"A", "B", "held"} and all(v.dtype == np.float32 for v in shifts.values())
    for lib, spectrum in spectra.items():  # each library, shifted, has the reference's colouring
        np.testing.assert_allclose(colour.colouring(spectrum + shifts[lib], 2), target, atol=1e-3)
    np.testing.assert_allclose(colour.shift(spectra["held"], degree=2, target=target), shifts["held"])


def test_a_library_without_a_mean_spectrum_is_refused():
    with pytest.raises(DataError, match=r"no mean spectrum for libraries \['C'\].*dvc repro features"):
        colour.reference({"A": tilt(0, 1)}, {"A", "C"}, 1)
