"""Front end, registry back ends, assembly, saving and the model card (instrclf.models)."""

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, regularizers
from synthetic import TINY_PARAMS, tiny_card, tiny_settings

from instrclf import features, models, settings
from instrclf.card import card_path, read_card
from instrclf.errors import DataError, ParameterError
from instrclf.settings import BaselineConfig, Conv1dConfig, Conv2dConfig, LstmConfig
from instrclf.features import frontend
from instrclf import backends

LABELS = ["Fl", "Tbn", "Vn"]
CLEAN, FEATURES = tiny_settings()
N_SAMPLES = CLEAN.window_length  # 4000: 0.5 s at 8 kHz

#: The training recipe every config carries (models.<name>); the knobs tested here are the others.
RECIPE = {"epochs": 1, "batch_size": 8, "learning_rate": 0.01, "precision": "float32"}


def tiny_config(name):
    return settings.model_config(TINY_PARAMS, name)


@pytest.fixture(scope="module")
def front():
    return frontend(clean=CLEAN, features=FEATURES)


@pytest.fixture(scope="module")
def spec_shape(front):
    return tuple(front.output_shape[1:])


@pytest.fixture(scope="module")
def audio():
    """Six 0.5-s windows: tones and noise at different levels (the front end works in dB)."""
    rng = np.random.default_rng(0)
    t = np.arange(N_SAMPLES) / CLEAN.sample_rate
    x = [0.3 * np.sin(2 * np.pi * f * t) for f in (110, 330, 660)]
    x += [a * rng.standard_normal(N_SAMPLES) for a in (0.01, 0.1, 0.5)]
    return np.stack(x).astype("float32")[..., None]


def tiny_back(name, spec_shape, *, fold=0, seed=0, config=None):
    keras.utils.set_random_seed(seed)
    return backends.build(
        name, config=config or tiny_config(name), input_shape=spec_shape, n_classes=len(LABELS), fold=fold
    )


def call(model, x):
    return np.asarray(model(x, training=False))


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("name", "expected"),
    # With 14 classes, 1-s 16 kHz windows, 128 mels, n_fft 512, hop 160 (100 x 128 spectrograms)
    # and the default knobs of params.yaml. The classic models' totals were conv1d 53,222,
    # conv2d 135,742, lstm 95,374, counted with their LayerNormalization(axis=2) over 128 mels
    # (2 x 128 = 256 weights) inside. That layer now opens the back end and the kapre front end
    # has no weights at all, so each back end alone has exactly the classic total; without
    # its LayerNormalization: conv1d 52,966, conv2d 135,486, lstm 95,118.
    # baseline: 256 (LayerNormalization) + 128 x 14 + 14 (softmax) = 2,062.
    # The classic LSTM and Conv2D keep every frame (time_pool 1); the defaults average frames
    # (LSTM by 8, conv2d by 2), which shrinks only their flattened heads, and the default conv2d
    # has twice the classic widths.
    [("conv1d", 53_222), ("conv2d", 135_742), ("lstm", 95_374), ("baseline", 2_062)],
)
def test_classic_parameter_counts(name, expected):
    params = settings.load(Path(__file__).resolve().parents[1] / "params.yaml")
    clean = settings.CleanSettings(sample_rate=16000, delta_time=1.0, threshold_db=-64.3, envelope_ms=50)
    features = settings.FeatureSettings(n_mels=128, n_fft=512, win_length=400, hop_length=160)
    front = frontend(clean=clean, features=features)
    assert front.output_shape == (None, 100, 128, 1)
    assert front.count_params() == 0 and not front.trainable_weights
    config = settings.model_config(params, name)
    if name in ("lstm", "conv2d"):
        assert config.time_pool == {"lstm": 8, "conv2d": 2}[name]
        config = config.model_copy(update={"time_pool": 1})
    if name == "conv2d":
        classic = [8, 16, 16, 32, 32]
        assert list(config.filters) == [2 * width for width in classic]
        config = config.model_copy(update={"filters": classic})
    back = backends.build(name, config=config, input_shape=front.output_shape[1:], n_classes=14, fold=0)
    assert back.count_params() == expected
    assert back.get_layer("mel_norm").count_params() == 2 * 128
    assert models.assemble(front, [back], name=name).count_params() == expected


# --------------------------------------------------------------------------- build, save, reload


@pytest.mark.parametrize("name", sorted(settings.MODEL_CONFIGS))
def test_every_model_saves_and_reloads_with_plain_keras(tmp_path, name, front, spec_shape, audio):
    model = models.assemble(front, [tiny_back(name, spec_shape, fold=3)], name=name)
    probs = call(model, audio)
    assert probs.shape == (len(audio), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / f"{name}.keras"
    card = tiny_card(name, labels=LABELS, test_folds=[3])
    models.save(model, path, card=card)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.keras"]  # no temporary left
    plain = keras.models.load_model(path)  # no custom_objects
    np.testing.assert_array_equal(call(plain, audio), probs)
    loaded, loaded_card = models.load(path)
    assert loaded_card == card
    np.testing.assert_array_equal(call(loaded, audio), probs)
    assert loaded.get_layer(backends.backend_name(name, 3)) is not None
    assert loaded.get_layer("frontend") is not None


def test_conv1d_as_conv2d_computes_what_time_distributed_conv1d_computes(spec_shape):
    """The conv1d stack written with Conv2D(w, (1, k)) is the classic TimeDistributed(Conv1D(w, k)) stack."""
    config = Conv1dConfig(**RECIPE, filters=[4, 8, 16], kernel_size=3, dense=16, dropout=0.1, l2=0.001)
    new = tiny_back("conv1d", spec_shape, config=config)

    inputs = keras.Input(spec_shape)
    x = layers.LayerNormalization(axis=2)(inputs)
    for i, width in enumerate(config.filters):
        x = layers.TimeDistributed(layers.Conv1D(width, config.kernel_size, activation="tanh" if i == 0 else "relu"))(x)
        if i < len(config.filters) - 1:
            x = layers.MaxPooling2D((2, 2))(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(config.dropout)(x)
    x = layers.Dense(config.dense, activation="relu", activity_regularizer=regularizers.l2(config.l2))(x)
    classic = keras.Model(inputs, layers.Dense(len(LABELS), activation="softmax")(x))

    assert classic.count_params() == new.count_params()
    new_weights, classic_weights = new.get_weights(), classic.get_weights()
    assert [w.size for w in new_weights] == [w.size for w in classic_weights]
    # Conv1D kernels are (k, ch, w), Conv2D (1, k) kernels (1, k, ch, w): the same numbers.
    classic.set_weights([w.reshape(c.shape) for w, c in zip(new_weights, classic_weights, strict=True)])
    rng = np.random.default_rng(1)
    spec = rng.uniform(-100, 0, size=(4, *spec_shape)).astype("float32")
    np.testing.assert_allclose(call(classic, spec), call(new, spec), rtol=1e-5, atol=1e-6)
    # And the first convolution's feature maps, before any pooling hides a difference.
    first_new = keras.Model(new.input, new.get_layer("conv1d_0").output)
    first_classic = keras.Model(classic.input, classic.layers[2].output)
    np.testing.assert_allclose(call(first_classic, spec), call(first_new, spec), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(settings.MODEL_CONFIGS))
def test_raw_audio_model_equals_back_end_on_cached_spectrograms(name, front, spec_shape, audio):
    """What train.run fits (back end on front-end output computed once) is what the saved model computes."""
    back = tiny_back(name, spec_shape)
    model = models.assemble(front, [back], name=name)
    cached = features.spectrograms(front, audio)
    assert cached.shape == (len(audio), *spec_shape) and cached.dtype == np.float32
    np.testing.assert_allclose(model.predict(audio, verbose=0), back.predict(cached, verbose=0), rtol=1e-5, atol=1e-6)


def test_ensemble_is_the_mean_of_its_back_ends(front, spec_shape, audio):
    backs = [tiny_back("conv1d", spec_shape, fold=0, seed=1), tiny_back("conv1d", spec_shape, fold=1, seed=2)]
    ensemble = models.assemble(front, backs, name="conv1d")
    spec = features.spectrograms(front, audio)
    outputs = [call(back, spec) for back in backs]
    assert not np.allclose(outputs[0], outputs[1])  # two different models, or the test proves nothing
    np.testing.assert_allclose(call(ensemble, audio), np.mean(outputs, axis=0), rtol=1e-5, atol=1e-7)


def shifted_views(spec, radius):
    """``spec`` moved by every whole number of mel bands in -radius..radius, the edge band repeated (numpy)."""
    n = spec.shape[2]
    return [spec[:, :, np.clip(np.arange(n) - k, 0, n - 1), :] for k in range(-radius, radius + 1)]


def test_a_shift_averaged_model_is_the_mean_over_shifted_spectra_of_every_back_end(tmp_path, front, spec_shape, audio):
    """predict.shift_average: each back end on the spectrum moved by -r..r bands, every probability averaged;
    saved and reloaded it is the same model, its back ends and its radius found again."""
    backs = [tiny_back("conv2d", spec_shape, fold=0, seed=1), tiny_back("conv2d", spec_shape, fold=1, seed=2)]
    model = models.assemble(front, backs, name="conv2d", shift_average=2)
    spec = features.spectrograms(front, audio)
    expected = np.mean([call(b, v) for b in backs for v in shifted_views(spec, 2)], axis=0)
    assert not np.allclose(expected, np.mean([call(b, spec) for b in backs], axis=0), atol=1e-4)  # the views matter
    np.testing.assert_allclose(call(model, audio), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(call(models.scorer(backs[0], shift_average=2), spec),
                               np.mean([call(backs[0], v) for v in shifted_views(spec, 2)], axis=0), rtol=1e-5, atol=1e-7)
    assert models.scorer(backs[0], shift_average=0) is backs[0]
    models.save(model, tmp_path / "m.keras", card=tiny_card("conv2d", labels=LABELS, test_folds=[0, 1]))
    loaded, _ = models.load(tmp_path / "m.keras")
    np.testing.assert_allclose(call(loaded, audio), expected, rtol=1e-5, atol=1e-7)
    assert models.shift_average_of(loaded) == 2 and [b.name for b in models.back_ends(loaded)] == [b.name for b in backs]
    assert models.shift_average_of(models.assemble(front, backs, name="plain")) == 0


def test_the_test_time_views_are_the_moves_training_augments_with(spec_shape):
    """BandShift(k) is augment.mel_shift with its draw fixed at k: each augmented example is one of the views."""
    from instrclf import augment
    from instrclf.runtime import tf

    x = np.random.default_rng(0).normal(size=(16, *spec_shape)).astype("float32")
    moved = np.asarray(augment.mel_shift(tf.constant(x), tf.constant([1, 2]), 2))
    views = {k: np.asarray(models.BandShift(k)(x)) for k in range(-2, 3)}
    found = [[k for k, v in views.items() if np.array_equal(moved[i], v[i])] for i in range(len(x))]
    assert all(len(ks) == 1 for ks in found) and len({ks[0] for ks in found}) > 2, found


def test_the_same_model_saved_twice_is_the_same_bytes(tmp_path, spec_shape, audio):
    """A DVC output must hash the same for the same weights: no save date, no memory addresses, no zip times."""
    card = tiny_card("conv1d", labels=LABELS, test_folds=[0, 1])
    paths = []
    for i in range(2):  # rebuilt as a fresh stage process would: other Python objects, a later clock
        if i:
            time.sleep(1.1)  # Keras stamps the save time to the second
        keras.backend.clear_session()  # layer names restart from 1, as in a new process
        front = frontend(clean=CLEAN, features=FEATURES)
        backs = [tiny_back("conv1d", spec_shape, fold=0, seed=1), tiny_back("conv1d", spec_shape, fold=1, seed=2)]
        paths.append(tmp_path / f"{i}.keras")
        models.save(models.assemble(front, backs, name="conv1d"), paths[-1], card=card)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    reloaded, _ = models.load(paths[1])
    np.testing.assert_array_equal(call(reloaded, audio), call(keras.models.load_model(paths[0]), audio))


# --------------------------------------------------------------------------- knobs


def _conv_layers(model, prefix):
    return [layer for layer in model.layers if layer.name.startswith(prefix)]


def _check_conv1d(model, c):
    convs = _conv_layers(model, "conv1d_")
    assert [layer.filters for layer in convs] == list(c.filters)
    assert {layer.kernel_size for layer in convs} == {(1, c.kernel_size)}


def _check_conv2d(model, c):
    assert model.get_layer("time_pool").pool_size == (c.time_pool, 1)
    convs = _conv_layers(model, "conv2d_")
    assert [layer.filters for layer in convs] == list(c.filters)
    assert [layer.kernel_size for layer in convs] == [(k, k) for k in c.kernel_sizes]


def _check_lstm(model, c):
    assert model.get_layer("time_pool").pool_size == (c.time_pool, 1)
    assert model.get_layer("frame_dense").units == c.frame_dense
    assert model.get_layer("bilstm").forward_layer.units == c.units
    assert [model.get_layer("dense_0").units, model.get_layer("dense_1").units] == list(c.dense)


def _check_head(model, c, dense):
    assert model.get_layer("dropout").rate == pytest.approx(c.dropout)
    assert model.get_layer("dense").units == dense
    assert float(model.get_layer("dense").activity_regularizer.l2) == pytest.approx(c.l2)


KNOBS = {
    "conv1d": (Conv1dConfig(**RECIPE, filters=[3, 5], kernel_size=5, dense=11, dropout=0.37, l2=0.0123), _check_conv1d),
    "conv2d": (Conv2dConfig(**RECIPE, time_pool=3, filters=[3, 5], kernel_sizes=[5, 3], dense=11, dropout=0.37, l2=0.0123), _check_conv2d),
    "lstm": (LstmConfig(**RECIPE, time_pool=3, frame_dense=9, units=7, dense=[13, 6], head=11, dropout=0.37, l2=0.0123), _check_lstm),
}


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_every_knob_reaches_the_model(name, spec_shape):
    config, check = KNOBS[name]
    assert config != tiny_config(name)
    model = tiny_back(name, spec_shape, config=config)
    check(model, config)
    _check_head(model, config, config.head if name == "lstm" else config.dense)


def test_a_mixed_precision_back_end_computes_in_bfloat16_and_answers_in_float32(spec_shape):
    config = tiny_config("conv2d")
    assert config.precision == "mixed_bfloat16"
    model = tiny_back("conv2d", spec_shape, config=config)
    assert model.get_layer("conv2d_0").compute_dtype == "bfloat16"
    assert model.get_layer("conv2d_0").variable_dtype == "float32"
    assert model.get_layer("softmax").compute_dtype == model.get_layer("dense").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored for what is built next
    as_float32 = config.model_copy(update={"precision": "float32"})
    assert tiny_back("conv2d", spec_shape, config=as_float32).get_layer("conv2d_0").compute_dtype == "float32"


def test_baseline_knob_reaches_the_model(spec_shape):
    model = tiny_back("baseline", spec_shape, config=BaselineConfig(**RECIPE, l2=0.0123))
    assert float(model.get_layer("softmax").kernel_regularizer.l2) == pytest.approx(0.0123)


@pytest.mark.parametrize(
    ("name", "config", "n_classes", "match"),
    [
        ("vgg", BaselineConfig(**RECIPE, l2=0.0), 3, r"model must be one of \['conv1d', 'conv2d', 'lstm', 'baseline'\], got 'vgg'"),
        ("conv1d", BaselineConfig(**RECIPE, l2=0.0), 3, "model conv1d needs a Conv1dConfig, got BaselineConfig"),
        ("baseline", BaselineConfig(**RECIPE, l2=0.0), 1, "at least 2 classes, got 1"),
        (
            "conv1d",
            Conv1dConfig(**RECIPE, filters=[4] * 8, kernel_size=3, dense=8, dropout=0.1, l2=0.0),
            3,
            r"models.conv1d does not fit the input spectrogram \(50, 32, 1\)",
        ),
    ],
)
def test_backend_refuses_bad_arguments(name, config, n_classes, match, spec_shape):
    assert spec_shape == (50, 32, 1)
    with pytest.raises(ParameterError, match=match):
        backends.build(name, config=config, input_shape=spec_shape, n_classes=n_classes, fold=0)


def test_assemble_needs_a_back_end(front):
    with pytest.raises(ParameterError) as error:
        models.assemble(front, [], name="x")
    assert str(error.value) == "a model needs at least one back end"


def test_an_assembled_model_is_named_takes_audio_and_averages_folds_in_one_named_layer(front, spec_shape):
    """What model.summary() shows a user: the model's name, an input 'audio', and for several folds the
    layer 'mean_of_folds' (one fold: its back end answers directly)."""
    one = models.assemble(front, [tiny_back("baseline", spec_shape)], name="baseline")
    five = models.assemble(front, [tiny_back("baseline", spec_shape, fold=f) for f in range(2)], name="ensemble")
    assert (one.name, five.name) == ("baseline", "ensemble")
    assert one.inputs[0].name == five.inputs[0].name == "audio"
    assert [layer.name for layer in five.layers if isinstance(layer, layers.Average)] == ["mean_of_folds"]
    assert not any(isinstance(layer, layers.Average) for layer in one.layers)


# --------------------------------------------------------------------------- the card and bad files


@pytest.fixture(scope="module")
def saved(tmp_path_factory, front, spec_shape):
    """A saved baseline model with its card: (folder, card)."""
    folder = tmp_path_factory.mktemp("saved")
    card = tiny_card("baseline", labels=LABELS, test_folds=[0])
    models.save(models.assemble(front, [tiny_back("baseline", spec_shape)], name="baseline"), folder / "m.keras", card=card)
    return folder, card


def test_card_round_trips(saved):
    folder, card = saved
    assert card_path(folder / "m.keras") == folder / "m.json"
    back = read_card(folder / "m.json")
    assert back == card
    assert back.typed_config == tiny_config("baseline")
    assert back.clean == CLEAN and back.features == FEATURES
    assert json.loads((folder / "m.json").read_text())["labels"] == LABELS


def test_a_card_records_a_held_out_family_as_its_list(tmp_path):
    """split.unseen_library as a list (a family held out together): the card keeps the list, and predict compares it."""
    card = tiny_card("baseline", labels=LABELS, test_folds=[0], unseen_library=["TimGM6mb", "sf_GMbank"])
    (tmp_path / "m.json").write_text(card.model_dump_json())
    assert read_card(tmp_path / "m.json").unseen_library == ["TimGM6mb", "sf_GMbank"]


def _copy_model(saved, tmp_path, card_text=None):
    folder, _ = saved
    path = tmp_path / "m.keras"
    path.write_bytes((folder / "m.keras").read_bytes())
    if card_text is not None:
        (tmp_path / "m.json").write_text(card_text, encoding="utf-8")
    return path


def _card_dict(saved):
    return json.loads((saved[0] / "m.json").read_text())


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (None, "m.json: model card not found"),
        (lambda d: "{not json", r"m.json: bad model card: \(document\)"),
        (lambda d: json.dumps(_without(d, "labels")), "m.json: bad model card: labels: Field required"),
        (lambda d: json.dumps(_without(d, "clean")), "m.json: bad model card: clean: Field required"),
        (lambda d: json.dumps(d | {"format": 2}), "m.json: bad model card: format: Input should be 1"),
        (lambda d: json.dumps(d | {"labels": ["a", "b"]}), "m.keras has 3 outputs but its card lists 2 labels"),
        (lambda d: json.dumps(d | {"labels": ["a", "a", "b"]}), "m.json: bad model card: .*labels must be unique"),
        (lambda d: json.dumps(d | {"labels": ["a"]}), "m.json: bad model card: labels: List should have at least 2 items"),
        (lambda d: json.dumps(d | {"config": {"l2": "big"}}), "m.json: bad model card: .*models.baseline.l2"),
        (lambda d: json.dumps(d | {"extra": 1}), "m.json: bad model card: extra: Extra inputs are not permitted"),
    ],
)
def test_bad_card_is_one_line_naming_the_file(saved, tmp_path, edit, match):
    path = _copy_model(saved, tmp_path, None if edit is None else edit(_card_dict(saved)))
    with pytest.raises(DataError, match=match) as err:
        models.load(path)
    assert "\n" not in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_missing_model_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="m.keras: model not found") as err:
        models.load(tmp_path / "m.keras")
    assert "\n" not in str(err.value)


def test_random_bytes_are_not_a_model(saved, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "m.json").write_text(json.dumps(_card_dict(saved)))
    with pytest.raises(DataError, match=r"m.keras: not a loadable Keras model") as err:
        models.load(path)
    assert "\n" not in str(err.value)


def test_a_lambda_layer_is_refused_by_safe_mode(saved, tmp_path):
    inputs = keras.Input((N_SAMPLES, 1))
    x = layers.Lambda(lambda t: t * 2.0)(inputs)
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(len(LABELS), activation="softmax")(x))
    path = tmp_path / "m.keras"
    model.save(path)
    (tmp_path / "m.json").write_text(json.dumps(_card_dict(saved)))
    with pytest.raises(DataError, match=r"m.keras: not a loadable Keras model \(ValueError: .*[Ll]ambda") as err:
        models.load(path)
    assert "\n" not in str(err.value)


def test_save_refuses_another_suffix(tmp_path, saved):
    _, card = saved
    with pytest.raises(ParameterError, match=r"must end in .keras, got .*m.h5"):
        models.save(keras.Sequential([keras.Input((2,)), layers.Dense(3)]), tmp_path / "m.h5", card=card)
    assert not list(tmp_path.iterdir())


def test_a_save_killed_midway_leaves_nothing_the_next_save_keeps(tmp_path, saved, dead_pid):
    """A temporary of a killed save (io's naming, dead PID) is removed by the next save of that model."""
    saved_folder, card = saved
    folder = tmp_path / "again"
    folder.mkdir()
    leftover = folder / f".m.keras.tmp-{dead_pid}-.keras"
    leftover.write_bytes(b"half a model")
    model, _ = models.load(saved_folder / "m.keras")
    models.save(model, folder / "m.keras", card=card)
    assert sorted(p.name for p in folder.iterdir()) == ["m.json", "m.keras"]



# --------------------------------------------------------------------------- knobs measured (issue 24)


@pytest.mark.parametrize("time_pool", [1, 2, 3, 8])
@pytest.mark.parametrize(("name", "first_layer"), [("conv2d", "conv2d_0"), ("lstm", "frame_dense")])
def test_time_pool_divides_the_frames_the_back_end_steps_over(name, first_layer, time_pool, spec_shape):
    """50 frames averaged in groups of time_pool: the first layer after the pooling sees ceil(50 / time_pool) steps."""
    config = tiny_config(name).model_copy(update={"time_pool": time_pool})
    back = tiny_back(name, spec_shape, config=config)
    assert back.get_layer(first_layer).output.shape[1] == -(-spec_shape[0] // time_pool)


@pytest.mark.parametrize(
    ("n_fft", "win_length", "hop_length", "n_mels"),
    [(256, 200, 80, 32), (256, 128, 64, 40), (512, 400, 160, 64), (128, 128, 50, 20), (64, 48, 100, 33)],
)
def test_front_end_equals_librosas_log_mel_spectrogram(n_fft, win_length, hop_length, n_mels):
    """Each features knob reaches the spectrogram: kapre's output equals librosa's, computed independently.

    kapre frames the signal every hop_length samples from the start (padding the end with
    zeros), windows win_length samples with a periodic Hann window, zero-pads them to n_fft,
    takes the magnitude, applies a Slaney mel filterbank and returns 10 log10 (floor 1e-5,
    80 dB below the example's maximum).
    """
    import librosa

    feats = settings.FeatureSettings(n_mels=n_mels, n_fft=n_fft, win_length=win_length, hop_length=hop_length)
    rng = np.random.default_rng(5)
    t = np.arange(N_SAMPLES) / CLEAN.sample_rate
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1870 * t) + 0.01 * rng.standard_normal(N_SAMPLES)
    got = frontend(clean=CLEAN, features=feats).predict(y.astype("float32")[None, :, None], verbose=0)[0, :, :, 0]

    # librosa's window and mel filterbank; the framing in NumPy (librosa.stft compiles numba code: seconds)
    frames = -(-N_SAMPLES // hop_length)
    padded = np.zeros((frames - 1) * hop_length + win_length)
    padded[:N_SAMPLES] = y[: len(padded)]
    window = librosa.filters.get_window("hann", win_length, fftbins=True)
    framed = np.stack([padded[i * hop_length : i * hop_length + win_length] * window for i in range(frames)])
    magnitude = np.abs(np.fft.rfft(framed, n=n_fft, axis=1)).T  # (n_fft // 2 + 1, frames)
    mel = librosa.filters.mel(sr=CLEAN.sample_rate, n_fft=n_fft, n_mels=n_mels, htk=False, norm="slaney") @ magnitude
    reference = 10 * np.log10(np.maximum(mel, 1e-5))
    reference = np.maximum(reference, reference.max() - 80.0).T
    assert got.shape == reference.shape == (frames, n_mels)
    np.testing.assert_allclose(got, reference, atol=0.05)


def test_n_mels_up_to_the_ffts_bins_is_built_and_one_more_is_refused():
    """n_fft 64 has 33 frequency bins: 33 mel bands are the most it can fill."""
    feats = settings.FeatureSettings(n_mels=33, n_fft=64, win_length=64, hop_length=32)
    assert frontend(clean=CLEAN, features=feats).output_shape[2] == 33
    with pytest.raises(ParameterError, match=r"^features: n_mels \(34\) must be <= n_fft // 2 \+ 1 \(33\)$"):
        settings.FeatureSettings.from_params({"n_mels": 34, "n_fft": 64, "win_length": 64, "hop_length": 32})


@pytest.mark.parametrize("name", sorted(settings.MODEL_CONFIGS))
def test_the_last_frames_of_a_note_reach_the_answer(name):
    """Changing only the last two frames changes the probabilities: no layer after the pooling drops them.

    12 frames: the tiny conv1d's two 2x2 poolings divide it evenly (its classic 'valid' pooling
    does drop a frame it cannot pair, e.g. the 13th of 13).
    """
    shape = (12, 40, 1)
    back = tiny_back(name, shape)
    rng = np.random.default_rng(3)
    spec = rng.uniform(-80, 0, size=(4, *shape)).astype(np.float32)
    changed = spec.copy()
    changed[:, -2:] = rng.uniform(-80, 0, size=(4, 2, 40, 1))
    assert not np.allclose(call(back, spec), call(back, changed), rtol=0, atol=1e-7)


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_refused_mixed_precision_back_end_leaves_the_next_model_in_float32(spec_shape):
    """A bfloat16 config too deep for the input is refused; what is built next in the process still computes in float32."""
    too_deep = Conv1dConfig(**(RECIPE | {"precision": "mixed_bfloat16"}), filters=[4] * 8, kernel_size=3, dense=8,
                            dropout=0.1, l2=0.0)
    try:
        with pytest.raises(ParameterError, match="does not fit the input spectrogram"):
            backends.build("conv1d", config=too_deep, input_shape=spec_shape, n_classes=3, fold=0)
        assert keras.config.dtype_policy().name == "float32"
        assert tiny_back("baseline", spec_shape).get_layer("softmax").compute_dtype == "float32"
        assert keras.layers.Dense(2).compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")  # whatever happened, the tests after this one start in float32


# Mutation run (benchmarks/mutation.py): what its survivors asked for.


@pytest.mark.parametrize("name", sorted(settings.MODEL_CONFIGS))
def test_a_gain_that_changes_from_frame_to_frame_does_not_change_the_answer(name, spec_shape):
    """Each frame is normalised over its mels: a note decaying by any number of dB per frame is the same note."""
    back = tiny_back(name, spec_shape)
    rng = np.random.default_rng(7)
    spec = rng.uniform(-80, 0, size=(3, *spec_shape)).astype(np.float32)
    decayed = spec - np.linspace(0, 40, spec_shape[0], dtype=np.float32)[None, :, None, None]
    np.testing.assert_allclose(call(back, decayed), call(back, spec), rtol=1e-4, atol=1e-5)
    other = spec.copy()
    other[:, :, : spec_shape[1] // 2] -= 20  # the spectrum's shape changes: so does the answer
    assert not np.allclose(call(back, other), call(back, spec), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(settings.MODEL_CONFIGS))
def test_a_two_class_model_is_built_and_answers_two_probabilities(name, spec_shape):
    back = backends.build(name, config=tiny_config(name), input_shape=spec_shape, n_classes=2, fold=0)
    probs = call(back, np.random.default_rng(2).uniform(-80, 0, size=(3, *spec_shape)).astype(np.float32))
    assert probs.shape == (3, 2) and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


#: Layers of the classic stacks and the range their activation gives: tanh (-1, 1), relu [0, inf).
ACTIVATIONS = {
    "conv1d": {"conv1d_0": "tanh", "conv1d_1": "relu", "dense": "relu"},
    "conv2d": {"conv2d_0": "tanh", "conv2d_1": "relu", "dense": "relu"},
    "lstm": {"frame_dense": "tanh", "dense_0": "relu", "dense_1": "relu", "dense": "relu"},
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_the_classic_stacks_activations(name, spec_shape):
    """The first layer of the classic stacks is tanh (negative values kept, bounded), the later ones relu."""
    config = tiny_config(name).model_copy(update={"precision": "float32"})
    back = tiny_back(name, spec_shape, config=config)
    names = list(ACTIVATIONS[name])
    probe = keras.Model(back.input, [back.get_layer(n).output for n in names])
    spec = np.random.default_rng(4).uniform(-80, 0, size=(4, *spec_shape)).astype(np.float32)
    for layer, out in zip(names, probe(spec, training=False), strict=True):
        out = np.asarray(out)
        if ACTIVATIONS[name][layer] == "tanh":
            assert out.min() < -0.05 and np.abs(out).max() < 1, layer
        else:
            assert out.min() >= 0 and out.max() > 0, layer


def test_a_saved_archive_carries_no_clock_and_plain_entries(tmp_path, front, spec_shape):
    """Saved into a folder not yet made: every entry stored, dated 1980-01-01, mode 0644; no save date; ids 0, 1, ..."""
    import zipfile

    path = tmp_path / "new" / "deeper" / "m.keras"
    models.save(models.assemble(front, [tiny_back("baseline", spec_shape)], name="baseline"), path,
                card=tiny_card("baseline", labels=LABELS, test_folds=[0]))
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert {(i.date_time, i.external_attr >> 16, i.compress_type) for i in infos} == {
            ((1980, 1, 1, 0, 0, 0), 0o644, zipfile.ZIP_STORED)}
        meta = json.loads(archive.read("metadata.json"))
        config = archive.read("config.json").decode()
    assert isinstance(meta, dict) and "keras_version" in meta and "date_saved" not in meta
    import re

    ids = [int(v) for v in re.findall(r'"shared_object_id": (\d+)', config)]
    assert ids and sorted(set(ids)) == list(range(len(set(ids))))
    assert read_card(card_path(path)).labels == LABELS


# Mutation run of models.py after the back-end tests (benchmarks/mutation.py): what its survivors asked for.


def test_the_card_beside_a_model_is_indented_json(saved):
    """Cards are read by people (and diffed): two-space indented JSON, one key a line, a final newline."""
    text = (saved[0] / "m.json").read_text()
    assert text.startswith('{\n  "') and text.endswith("}\n") and json.loads(text) == _card_dict(saved)


@pytest.mark.parametrize(("raised", "shown"), [
    (ValueError("bad  layer\n\tconfig " + "x" * 300), "ValueError: " + ("bad layer config " + "x" * 300)[:200]),
    (KeyError(), "KeyError: KeyError"),
], ids=["long-message", "empty-message"])
def test_a_keras_failure_is_one_line_of_at_most_200_characters_of_its_reason(saved, tmp_path, monkeypatch, raised, shown):
    path = _copy_model(saved, tmp_path, card_text=(saved[0] / "m.json").read_text())
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: (_ for _ in ()).throw(raised))
    with pytest.raises(DataError) as error:
        models.load(path)
    assert str(error.value) == f"{path}: not a loadable Keras model ({shown})"


def test_shared_object_ids_become_their_order_of_first_appearance():
    """Keras writes memory addresses; two distinct shared objects stay distinct, a repeated one keeps its number."""
    config = {"a": {"shared_object_id": 140}, "b": [{"shared_object_id": 99}, {"shared_object_id": 140}], "c": 140}
    assert models._renumber_shared_objects(config, {}) == {"a": {"shared_object_id": 0},
                                                            "b": [{"shared_object_id": 1}, {"shared_object_id": 0}], "c": 140}


def test_a_model_file_that_cannot_be_opened_says_why(saved, tmp_path, monkeypatch):
    path = _copy_model(saved, tmp_path, card_text=(saved[0] / "m.json").read_text())
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.suffix == ".keras":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)  # root reads any file, so a chmod cannot show it
    with pytest.raises(DataError) as error:
        models.load(path)
    assert str(error.value) == f"{path}: not a loadable Keras model (cannot be read: Permission denied)"
