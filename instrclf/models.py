"""Every model, built by pure functions from a registry, on one shared kapre mel front end.

A model is two parts:

- the **front end** (:func:`frontend`): raw 1-second windows -> log-mel spectrogram in dB,
  computed by kapre inside the model. It has no trainable weights, so training computes
  it once per window (:func:`instrclf.train.spectrograms`) instead of once per epoch;
- the **back end** (:func:`backend`): spectrogram -> class probabilities, one builder per
  model name in :data:`REGISTRY`, each paired with its typed config.

:func:`assemble` joins a front end and one or more trained back ends (their mean, for the
cross-validation ensemble) into one model that takes raw audio; it is saved as ``.keras``
and reloads with plain ``keras.models.load_model``. A :class:`ModelCard` saved beside it
(``<name>.json``) carries its labels and every setting that shaped its input.
"""

import json
import os
import zipfile
from pathlib import Path
from typing import Literal

from .runtime import tf  # noqa: F401  (TensorFlow imported quietly, before keras)

import keras  # noqa: E402
from kapre.composed import get_melspectrogram_layer
from keras import layers, regularizers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import DataError, ParameterError
from .io import atomic_file, remove_stale
from .settings import (
    MODEL_CONFIGS,
    BaselineConfig,
    CleanSettings,
    Conv1dConfig,
    Conv2dConfig,
    FeatureSettings,
    LstmConfig,
    ModelConfig,
)

#: Version of the model card format; a card of another version is refused.
CARD_FORMAT = 1


# --------------------------------------------------------------------------- front end


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


# --------------------------------------------------------------------------- back ends


def _head(x, *, n_classes, dense, dropout, l2):
    """Dropout, one regularised relu layer and the softmax shared by the classic stacks."""
    x = layers.Dropout(dropout, name="dropout")(x)
    # float32 whatever the precision: the regulariser's sum and the softmax need its range
    x = layers.Dense(dense, activation="relu", activity_regularizer=regularizers.l2(l2), dtype="float32", name="dense")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name="softmax")(x)


def _time_pool(x, size: int):
    """Average the log-mel frames in groups of ``size`` (``padding="same"``); 1 leaves them."""
    if size > 1:
        x = layers.AveragePooling2D((size, 1), padding="same", name="time_pool")(x)
    return x


def conv1d_stack(x, *, n_classes: int, config: Conv1dConfig):
    """The classic Conv1D model: 1-D convolutions over frequency, frame by frame.

    Written as ``Conv2D(w, (1, k))``, which computes exactly what the classic
    ``TimeDistributed(Conv1D(w, k))`` does with the same weights, 2-3x faster on CPU.
    """
    for i, width in enumerate(config.filters):
        act = "tanh" if i == 0 else "relu"
        x = layers.Conv2D(width, (1, config.kernel_size), activation=act, name=f"conv1d_{i}")(x)
        if i < len(config.filters) - 1:
            x = layers.MaxPooling2D((2, 2), name=f"pool_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return _head(x, n_classes=n_classes, dense=config.dense, dropout=config.dropout, l2=config.l2)


def conv2d_stack(x, *, n_classes: int, config: Conv2dConfig):
    """The classic Conv2D model: 2-D convolutions over time x frequency."""
    x = _time_pool(x, config.time_pool)
    for i, (width, k) in enumerate(zip(config.filters, config.kernel_sizes)):
        act = "tanh" if i == 0 else "relu"
        x = layers.Conv2D(width, (k, k), activation=act, padding="same", name=f"conv2d_{i}")(x)
        if i < len(config.filters) - 1:
            x = layers.MaxPooling2D((2, 2), padding="same", name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return _head(x, n_classes=n_classes, dense=config.dense, dropout=config.dropout, l2=config.l2)


def _frames(x):
    """``(batch, frames, n_mels, 1)`` -> ``(batch, frames, n_mels)``: one vector per frame."""
    return layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)


def lstm_stack(x, *, n_classes: int, config: LstmConfig):
    """The classic recurrent model: per-frame dense, a bidirectional LSTM, skip concatenation.

    Frames are first averaged in groups of ``time_pool`` (8: 80 ms steps instead of 10 ms):
    the recurrence is sequential, so its cost falls by that factor, and the timbre of a
    held note changes slowly.
    """
    x = _time_pool(x, config.time_pool)
    s = layers.Dense(config.frame_dense, activation="tanh", name="frame_dense")(_frames(x))
    r = layers.Bidirectional(layers.LSTM(config.units, return_sequences=True), name="bilstm")(s)
    x = layers.Concatenate(axis=2, name="skip")([s, r])
    x = layers.Dense(config.dense[0], activation="relu", name="dense_0")(x)
    x = layers.MaxPooling1D(name="pool")(x)
    x = layers.Dense(config.dense[1], activation="relu", name="dense_1")(x)
    x = layers.Flatten(name="flatten")(x)
    return _head(x, n_classes=n_classes, dense=config.head, dropout=config.dropout, l2=config.l2)


def baseline_stack(x, *, n_classes: int, config: BaselineConfig):
    """Mean normalised log-mel over time into one softmax layer: multinomial logistic regression."""
    x = layers.GlobalAveragePooling1D(name="mean_over_time")(_frames(x))
    return layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=regularizers.l2(config.l2), dtype="float32", name="softmax"
    )(x)


#: name -> (builder, config class); each builder takes the normalised spectrogram and its config.
REGISTRY = {
    "conv1d": (conv1d_stack, Conv1dConfig),
    "conv2d": (conv2d_stack, Conv2dConfig),
    "lstm": (lstm_stack, LstmConfig),
    "baseline": (baseline_stack, BaselineConfig),
}
assert set(REGISTRY) == set(MODEL_CONFIGS)


def backend_name(name: str, fold: int) -> str:
    """The layer name of a fold's back end inside a saved model (unique within an ensemble)."""
    return f"{name}_fold{fold}"


def backend(name: str, *, config: ModelConfig, input_shape: tuple, n_classes: int, fold: int) -> keras.Model:
    """Back end ``name`` of test fold ``fold``: dB spectrogram ``input_shape`` -> softmax over ``n_classes``.

    It starts with a LayerNormalization over the mel axis of each frame, then the
    registry's stack, in the dtype policy ``config.precision`` (the softmax is float32).
    """
    if name not in REGISTRY:
        raise ParameterError(f"model must be one of {sorted(REGISTRY)}, got {name!r}")
    builder, config_class = REGISTRY[name]
    if not isinstance(config, config_class):
        raise ParameterError(f"model {name} needs a {config_class.__name__}, got {type(config).__name__}")
    if n_classes < 2:
        raise ParameterError(f"a classifier needs at least 2 classes, got {n_classes}")
    inputs = keras.Input(tuple(input_shape), name="melspectrogram")
    # The policy is global in Keras: set it only while this back end's layers are made
    # (kapre's front end cannot be built under a mixed policy), then restore it.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)
    try:
        x = layers.LayerNormalization(axis=2, name="mel_norm")(inputs)
        outputs = builder(x, n_classes=n_classes, config=config)
    except ValueError as exc:
        raise ParameterError(f"models.{name} does not fit the input spectrogram {tuple(input_shape)}: {exc}") from None
    finally:
        keras.config.set_dtype_policy(previous)
    return keras.Model(inputs, outputs, name=backend_name(name, fold))


def assemble(front: keras.Model, backs: list, *, name: str) -> keras.Model:
    """One raw-audio model: the front end, then the mean of the back ends' probabilities.

    Parameters
    ----------
    front : keras.Model
        From :func:`frontend`.
    backs : list of keras.Model
        Trained back ends on the front end's output (one per fold for an ensemble).
    name : str
        The model's name.
    """
    if not backs:
        raise ParameterError("assemble needs at least one back end")
    inputs = keras.Input(front.input_shape[1:], name="audio")
    mel = front(inputs)
    outputs = [back(mel) for back in backs]
    probs = outputs[0] if len(outputs) == 1 else layers.Average(name="mean_of_folds")(outputs)
    return keras.Model(inputs, probs, name=name)


def build(name: str, *, config: ModelConfig, clean: CleanSettings, features: FeatureSettings, n_classes: int, fold=0):
    """Model ``name`` on raw audio, untrained: ``assemble(frontend, [backend])``."""
    front = frontend(clean=clean, features=features)
    back = backend(name, config=config, input_shape=front.output_shape[1:], n_classes=n_classes, fold=fold)
    return assemble(front, [back], name=name)


# --------------------------------------------------------------------------- the card


class ModelCard(BaseModel):
    """What a saved model needs to be used: its labels and every setting that shaped its input."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: Literal[CARD_FORMAT]
    model: Literal[tuple(REGISTRY)]
    labels: list[str] = Field(min_length=2)
    target: Literal["instrument", "family"]
    clean: CleanSettings
    features: FeatureSettings
    config: dict
    test_folds: list[int] = Field(min_length=1)
    unseen_library: str | None
    seed: int

    @model_validator(mode="after")
    def _config_fits(self):
        REGISTRY[self.model][1].from_params(self.config)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        return self

    @property
    def typed_config(self) -> ModelConfig:
        """The model's knobs as their typed config class."""
        return REGISTRY[self.model][1].from_params(self.config)


def card_path(model_path) -> Path:
    """Where the card of a saved model sits: beside it, ``<name>.json``."""
    return Path(model_path).with_suffix(".json")


def read_card(path) -> ModelCard:
    """Read and validate a model card; one-line DataError naming the file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: model card not found (it is saved beside the .keras file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the model card: {exc}") from None
    try:
        return ModelCard.model_validate_json(text, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise DataError(f"{path}: bad model card: {field}: {first['msg']}") from None
    except ParameterError as exc:
        raise DataError(f"{path}: bad model card: {exc}") from None


def save(model: keras.Model, path, *, card: ModelCard) -> None:
    """Save ``model`` to ``path`` (``.keras``) and its card beside it, each written atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ParameterError(f"model path must end in .keras, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)  # a save killed mid-way left its temporary (io's naming) beside the model
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-.keras")  # Keras wants the .keras suffix
    try:
        model.save(tmp)
        _make_reproducible(tmp)
        with atomic_file(card_path(path)) as f:
            f.write(card.model_dump_json(indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _renumber_shared_objects(node, ids: dict):
    """Replace every ``shared_object_id`` (a Python ``id()`` in Keras) by its order of first appearance."""
    if isinstance(node, dict):
        return {
            key: ids.setdefault(value, len(ids)) if key == "shared_object_id" else _renumber_shared_objects(value, ids)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renumber_shared_objects(value, ids) for value in node]
    return node


def _make_reproducible(path) -> None:
    """Rewrite a saved ``.keras`` archive so that the same model gives the same bytes.

    Keras stamps three things that change from save to save although the model does not:
    ``date_saved`` in ``metadata.json``, ``shared_object_id`` values in ``config.json``
    (memory addresses) and the time of the weights' zip entry. They are dropped, renumbered
    in order of appearance and set to 1980-01-01; the members, their order and the weights'
    bytes stay as Keras wrote them, so the file loads exactly as before.
    """
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    rewritten = []
    for name, payload in members:
        if name == "metadata.json":
            meta = json.loads(payload)
            meta.pop("date_saved", None)
            payload = json.dumps(meta).encode()
        elif name == "config.json":
            payload = json.dumps(_renumber_shared_objects(json.loads(payload), {})).encode()
        rewritten.append((name, payload))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in rewritten:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, payload)


def load(path) -> tuple:
    """Load a saved model and its card.

    Returns
    -------
    model : keras.Model
    card : ModelCard

    Raises
    ------
    DataError
        One line naming the file: missing model or card, a card of another format, or a
        file Keras cannot load (corrupt, not a model, or refused by safe mode).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model not found (train it first: dvc repro)")
    card = read_card(card_path(path))
    try:  # Keras says "File not found" for a file it cannot open as a zip: say what is wrong instead
        with path.open("rb"):
            pass
    except OSError as exc:
        raise DataError(f"{path}: not a loadable Keras model (cannot be read: {exc.strerror})") from None
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a loadable Keras model (corrupt: a .keras file is a zip archive, this one is not)")
    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # Keras raises many types for a bad file; all mean "not a usable model"
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {reason})") from None
    if model.output_shape[-1] != len(card.labels):
        raise DataError(f"{path} has {model.output_shape[-1]} outputs but its card lists {len(card.labels)} labels")
    return model, card
