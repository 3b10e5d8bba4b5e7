"""benchmarks/few_shot.py reads the spectrograms as the train stage does: each library at the training libraries' colouring."""

import numpy as np
from synthetic import load_benchmark, make_features_dir, tiny_settings

from instrclf import colour
from instrclf.features import Features

CLEAN, FEATURES = tiny_settings()


def few_shot():
    return load_benchmark("few_shot")  # it imports its sibling module machine.py


def test_coloured_takes_every_library_to_the_colouring_of_the_training_rows(tmp_path):
    cache = Features(make_features_dir(tmp_path), clean=CLEAN, features=FEATURES)
    module = few_shot()
    index = cache.index
    train_rows = index[index["library"] == "A"]  # B is the new library: brought to A's colouring
    assert module.coloured(cache, train_rows, degree=None) == cache.take
    take = module.coloured(cache, train_rows, degree=2)
    spectra = cache.library_spectra()
    target = colour.colouring(spectra["A"], 2)
    rows = index.sample(10, random_state=0)
    expected = cache.take(rows) + np.stack([colour.shift(spectra[lib], degree=2, target=target)
                                            for lib in rows["library"]])[:, None, :, None]
    np.testing.assert_allclose(take(rows), expected, atol=1e-4)
    b = index[index["library"] == "B"]
    np.testing.assert_allclose(colour.colouring(take(b).mean(axis=(0, 1, 3)), 2), target, atol=1e-3)
