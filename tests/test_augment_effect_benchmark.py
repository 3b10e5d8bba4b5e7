"""benchmarks/augment_effect.py's library colouring removal: each library's mean spectrum, or its smooth part."""

import numpy as np
from synthetic import load_benchmark


def benchmark():
    return load_benchmark("augment_effect")


def remove_library_colouring():
    return benchmark().remove_library_colouring


def notes(rng, n=40, frames=6, bands=32):
    """Two "instruments" (a peak at band 8 or 20) in random order: ``(specs, instrument of each)``."""
    which = rng.integers(0, 2, n)
    specs = rng.normal(0, 0.1, (n, frames, bands, 1)).astype(np.float32)
    specs[which == 0, :, 8] += 10
    specs[which == 1, :, 20] += 10
    return specs, which


def test_the_mean_removes_each_librarys_own_colouring_and_keeps_the_instruments():
    remove = remove_library_colouring()
    rng = np.random.default_rng(0)
    a, _ = notes(rng)
    b, which = notes(rng)
    tilt = np.linspace(-12, 12, a.shape[2], dtype=np.float32)[None, None, :, None]
    specs = np.concatenate([a, b + tilt + 5])  # library B: another chain, tilted and louder
    libraries = np.array(["A"] * len(a) + ["B"] * len(b))
    out = remove(specs, libraries, "mean")
    assert out.shape == specs.shape and out.dtype == specs.dtype
    for library in "AB":
        assert np.abs(out[libraries == library].mean(axis=(0, 1))).max() < 1e-4
    # B's tilt and level are gone: its notes look like A's of the same instrument, up to the mix
    peak = out[libraries == "B"][:, :, 8, 0].mean(axis=1)
    assert (peak[which == 0] > 2).all() and (peak[which == 1] < -2).all()
    assert remove(specs, libraries, "none") is specs


def test_smooth_removes_only_a_cubic_across_the_bands():
    remove = remove_library_colouring()
    rng = np.random.default_rng(1)
    specs, _ = notes(rng)
    bands = np.arange(specs.shape[2], dtype=np.float32)
    cubic = (0.001 * (bands - 16) ** 3 - 0.2 * bands + 3)[None, None, :, None]
    libraries = np.array(["A"] * len(specs))
    plain, coloured = remove(specs, libraries, "smooth"), remove(specs + cubic, libraries, "smooth")
    np.testing.assert_allclose(coloured, plain, atol=1e-3)  # the cubic colouring is removed whole
    # the instruments' narrow peaks stay (the full mean would take most of them out)
    assert plain[:, :, 8].mean() > 2 and plain[:, :, 20].mean() > 2
    assert abs(remove(specs, libraries, "mean")[:, :, 8].mean()) < 1e-4


def test_smooth_of_a_degree_removes_that_polynomial_and_bad_values_are_refused():
    import argparse

    import pytest

    module = benchmark()
    rng = np.random.default_rng(2)
    specs, _ = notes(rng)
    bands = np.arange(specs.shape[2], dtype=np.float32)
    quintic = (1e-5 * (bands - 16) ** 5 + 0.001 * (bands - 16) ** 3)[None, None, :, None]
    libraries = np.array(["A"] * len(specs))
    np.testing.assert_allclose(module.remove_library_colouring(specs + quintic, libraries, "smooth:5"),
                               module.remove_library_colouring(specs, libraries, "smooth:5"), atol=1e-3)
    # a cubic cannot take a quintic colouring out whole
    assert np.abs(module.remove_library_colouring(specs + quintic, libraries, "smooth")
                  - module.remove_library_colouring(specs, libraries, "smooth")).max() > 0.1
    assert [module.library_mean(v) for v in ("none", "mean", "smooth", "smooth:5")] == ["none", "mean", "smooth", "smooth:5"]
    for bad in ("smooth:", "smooth:13", "smooth:x", "cubic"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be none, mean, smooth or smooth:<degree 0-12>"):
            module.library_mean(bad)
