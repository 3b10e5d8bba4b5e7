import copy

import numpy as np
import pytest
from synthetic import TINY_PARAMS

from instrclf import models
from instrclf.errors import DataError, ParameterError

TINY_FEATURES = models.Features.from_params(TINY_PARAMS)
N_TINY = 4000


def tiny_model(name, *, n_classes):
    knobs = models.model_config(TINY_PARAMS, name)
    return models.build(name, n_classes=n_classes, n_samples=N_TINY, features=TINY_FEATURES, config=knobs)


@pytest.mark.parametrize(
    ("name", "expected"),
    # The classic stacks' sizes with 14 classes at the default front end (checked against the notebooks).
    [("conv1d", 53_222), ("conv2d", 135_742), ("lstm", 95_374), ("baseline", 128 * 2 + 128 * 14 + 14)],
)
def test_classic_parameter_counts(name, expected):
    model = models.build(name, n_classes=14, n_samples=16000, features=models.Features())
    assert model.count_params() == expected


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_front_end_is_shared_and_outputs_probabilities(name):
    model = tiny_model(name, n_classes=3)
    assert model.get_layer("melspectrogram") is not None
    assert model.get_layer("mel_norm") is not None
    x = np.random.default_rng(0).standard_normal((2, N_TINY, 1)).astype("float32") * 0.1
    p = model.predict(x, verbose=0)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_save_load_roundtrip_without_custom_objects(tmp_path, name):
    model = tiny_model(name, n_classes=3)
    meta = {"labels": ["a", "b", "c"], "clean": {"sample_rate": 8000}}
    path = tmp_path / f"{name}.keras"
    models.save(model, path, meta=meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.keras"]
    loaded, loaded_meta = models.load(path)
    assert loaded_meta == meta
    x = np.random.default_rng(1).standard_normal((3, N_TINY, 1)).astype("float32") * 0.1
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_load_checks_metadata(tmp_path):
    model = tiny_model("baseline", n_classes=3)
    path = tmp_path / "m.keras"
    models.save(model, path, meta={"labels": ["a", "b"], "clean": {}})
    with pytest.raises(DataError, match="3 outputs but .* 2 labels"):
        models.load(path)
    models.meta_path(path).unlink()
    with pytest.raises(DataError, match="m.json not found"):
        models.load(path)
    with pytest.raises(DataError, match="not found"):
        models.load(tmp_path / "absent.keras")


def test_save_refuses_other_suffix(tmp_path):
    model = tiny_model("baseline", n_classes=2)
    with pytest.raises(ParameterError, match=r"\.keras"):
        models.save(model, tmp_path / "m.h5", meta={})


def test_a_stack_too_deep_for_the_input_names_the_model():
    with pytest.raises(ParameterError, match="models.conv1d does not fit .*features.n_mels=32"):
        models.build("conv1d", n_classes=3, n_samples=N_TINY, features=TINY_FEATURES)


def test_unknown_model_names_allowed_values():
    with pytest.raises(ParameterError, match=r"\['baseline', 'conv1d', 'conv2d', 'lstm'\].*'resnet'"):
        models.build("resnet", n_classes=3, n_samples=N_TINY, features=TINY_FEATURES)


@pytest.mark.parametrize(
    ("name", "knobs", "match"),
    [
        ("conv2d", {"width": 3}, r"models.conv2d has unknown keys \['width'\]"),
        ("conv1d", {"dropout": 1.5}, "models.conv1d.dropout"),
        ("lstm", {"l2": -1}, "models.lstm.l2"),
    ],
)
def test_model_config_rejects_bad_knobs(name, knobs, match):
    params = copy.deepcopy(TINY_PARAMS)
    params["models"][name] = knobs
    with pytest.raises(ParameterError, match=match):
        models.model_config(params, name)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("n_mels", 0, "features.n_mels"),
        ("n_fft", 2.5, "features.n_fft"),
        ("win_length", 512, "features.win_length must be <= features.n_fft"),
        ("n_mels", 200, "features.n_mels must be <= n_fft"),
    ],
)
def test_features_validation(key, value, match):
    params = copy.deepcopy(TINY_PARAMS)
    params["features"][key] = value
    with pytest.raises(ParameterError, match=match):
        models.Features.from_params(params)
