"""Every model, built by pure functions from a registry, on one shared kapre mel front end.

The front end turns raw 1-second windows into log-mel spectrograms *inside* the model,
so a saved ``.keras`` file classifies raw audio with nothing computed outside it.
"""

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import keras
from kapre.composed import get_melspectrogram_layer
from keras import layers, regularizers

from . import params as P
from .errors import DataError, ParameterError
from .io import write_json


@dataclass(frozen=True)
class Features:
    """Mel front-end settings (params ``features.*`` and ``clean.sample_rate``)."""

    sample_rate: int = 16000
    n_mels: int = 128
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160

    @classmethod
    def from_params(cls, params: dict) -> "Features":
        """Read and check ``features.*`` and ``clean.sample_rate``."""
        out = cls(
            sample_rate=P.number("clean.sample_rate", P.get(params, "clean.sample_rate"), low=8000, high=96000, integer=True),
            **{
                f.name: P.number(f"features.{f.name}", P.get(params, f"features.{f.name}"), low=1, integer=True)
                for f in fields(cls)
                if f.name != "sample_rate"
            },
        )
        if out.win_length > out.n_fft:
            raise ParameterError(f"features.win_length must be <= features.n_fft ({out.n_fft}), got {out.win_length}")
        if out.n_mels > out.n_fft // 2 + 1:
            raise ParameterError(f"features.n_mels must be <= n_fft // 2 + 1 ({out.n_fft // 2 + 1}), got {out.n_mels}")
        return out


def mel_frontend(inputs, *, features: Features):
    """Log-mel spectrogram of raw audio, normalised over frequency per frame.

    Parameters
    ----------
    inputs : KerasTensor
        Raw audio, shape ``(batch, n_samples, 1)``.
    features : Features
        Mel settings.

    Returns
    -------
    KerasTensor
        Shape ``(batch, frames, n_mels, 1)``: decibels, then LayerNormalization over the mel axis.
    """
    mel = get_melspectrogram_layer(
        n_fft=features.n_fft,
        win_length=features.win_length,
        hop_length=features.hop_length,
        sample_rate=features.sample_rate,
        n_mels=features.n_mels,
        pad_end=True,
        return_decibel=True,
        input_data_format="channels_last",
        output_data_format="channels_last",
        name="melspectrogram",
    )(inputs)
    return layers.LayerNormalization(axis=2, name="mel_norm")(mel)


def _head(x, *, n_classes, dense, dropout, l2):
    """Dropout, one regularised relu layer and the softmax shared by the classic stacks."""
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(dense, activation="relu", activity_regularizer=regularizers.l2(l2), name="dense")(x)
    return layers.Dense(n_classes, activation="softmax", name="softmax")(x)


def conv1d_stack(x, *, n_classes, filters=(8, 16, 32, 64, 128), kernel_size=4, dense=64, dropout=0.1, l2=0.001):
    """The classic Conv1D model: 1-D convolutions over frequency, frame by frame."""
    for i, width in enumerate(filters):
        act = "tanh" if i == 0 else "relu"
        x = layers.TimeDistributed(layers.Conv1D(width, kernel_size, activation=act), name=f"td_conv1d_{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D((2, 2), name=f"pool_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return _head(x, n_classes=n_classes, dense=dense, dropout=dropout, l2=l2)


def conv2d_stack(
    x, *, n_classes, filters=(8, 16, 16, 32, 32), kernel_sizes=(7, 5, 3, 3, 3), dense=64, dropout=0.2, l2=0.001
):
    """The classic Conv2D model: 2-D convolutions over time x frequency."""
    if len(filters) != len(kernel_sizes):
        raise ParameterError(
            f"models.conv2d.filters and kernel_sizes must have the same length, got {len(filters)} and {len(kernel_sizes)}"
        )
    for i, (width, k) in enumerate(zip(filters, kernel_sizes)):
        act = "tanh" if i == 0 else "relu"
        x = layers.Conv2D(width, (k, k), activation=act, padding="same", name=f"conv2d_{i}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D((2, 2), padding="same", name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return _head(x, n_classes=n_classes, dense=dense, dropout=dropout, l2=l2)


def _frames(x):
    """``(batch, frames, n_mels, 1)`` -> ``(batch, frames, n_mels)``: one vector per frame."""
    return layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)


def lstm_stack(x, *, n_classes, frame_dense=64, units=32, dense=(64, 32), head=32, dropout=0.2, l2=0.001):
    """The classic recurrent model: per-frame dense, a bidirectional LSTM, skip concatenation."""
    if len(dense) != 2:
        raise ParameterError(f"models.lstm.dense must list two widths, got {list(dense)!r}")
    s = layers.TimeDistributed(layers.Dense(frame_dense, activation="tanh"), name="frame_dense")(_frames(x))
    r = layers.Bidirectional(layers.LSTM(units, return_sequences=True), name="bilstm")(s)
    x = layers.Concatenate(axis=2, name="skip")([s, r])
    x = layers.Dense(dense[0], activation="relu", name="dense_0")(x)
    x = layers.MaxPooling1D(name="pool")(x)
    x = layers.Dense(dense[1], activation="relu", name="dense_1")(x)
    x = layers.Flatten(name="flatten")(x)
    return _head(x, n_classes=n_classes, dense=head, dropout=dropout, l2=l2)


def baseline_stack(x, *, n_classes, l2=0.0001):
    """Mean normalised log-mel over time into one softmax layer: multinomial logistic regression."""
    x = layers.GlobalAveragePooling1D(name="mean_over_time")(_frames(x))
    return layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizers.l2(l2), name="softmax")(x)


#: name -> builder; each takes the front end's output and the model's knobs (params ``models.<name>``).
REGISTRY = {
    "conv1d": conv1d_stack,
    "conv2d": conv2d_stack,
    "lstm": lstm_stack,
    "baseline": baseline_stack,
}


def model_config(params: dict, name: str) -> dict:
    """The knobs of one model from ``models.<name>``, checked against its builder's arguments."""
    P.choice("model", name, REGISTRY)
    config = dict(P.get(params, f"models.{name}", {}) or {})
    builder = REGISTRY[name]
    allowed = set(builder.__kwdefaults__) - {"n_classes"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ParameterError(f"models.{name} has unknown keys {unknown}; allowed: {sorted(allowed)}")
    for key in ("dropout",):
        if key in config:
            P.number(f"models.{name}.{key}", config[key], low=0, high=1, high_open=True)
    for key in ("l2",):
        if key in config:
            P.number(f"models.{name}.{key}", config[key], low=0)
    return config


def build(name: str, *, n_classes: int, n_samples: int, features: Features, config: dict | None = None):
    """Build (uncompiled) model ``name`` for raw windows of ``n_samples``.

    Parameters
    ----------
    name : str
        One of :data:`REGISTRY`.
    n_classes : int
        Size of the softmax.
    n_samples : int
        Samples per window (``clean.sample_rate * clean.delta_time``).
    features : Features
        Mel front-end settings.
    config : dict, optional
        Knobs for the builder (``models.<name>``); defaults are the classic values.

    Returns
    -------
    keras.Model
    """
    P.choice("model", name, REGISTRY)
    if n_classes < 2:
        raise ParameterError(f"a classifier needs at least 2 classes, got {n_classes}")
    inputs = keras.Input((n_samples, 1), name="audio")
    x = mel_frontend(inputs, features=features)
    try:
        outputs = REGISTRY[name](x, n_classes=n_classes, **(config or {}))
    except ValueError as exc:
        raise ParameterError(
            f"models.{name} does not fit the input ({n_samples} samples -> mel frames x features.n_mels="
            f"{features.n_mels}): {exc}"
        ) from None
    return keras.Model(inputs, outputs, name=name)


def features_dict(features: Features) -> dict:
    """Plain-dict form of :class:`Features`, for the metadata saved beside a model."""
    return asdict(features)


def meta_path(model_path) -> Path:
    """Where the metadata of a saved model sits: beside it, ``<name>.json``."""
    return Path(model_path).with_suffix(".json")


def save(model: keras.Model, path, *, meta: dict) -> None:
    """Save ``model`` to ``path`` (``.keras``) and ``meta`` (labels, clean and feature settings) beside it.

    Both files are written under temporary names and renamed into place, so a crash
    never leaves a half-written model.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ParameterError(f"model path must end in .keras, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        write_json(meta_path(path), meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path) -> tuple:
    """Load a saved model and its metadata.

    Returns
    -------
    model : keras.Model
    meta : dict
        At least ``labels`` (class names in output order) and ``clean`` (the settings
        that cut its input windows: sample_rate, delta_time, threshold_db, envelope_ms).
    """
    path = Path(path)
    mpath = meta_path(path)
    if not path.exists():
        raise DataError(f"model {path} not found: train it first (dvc repro train@<model>)")
    try:
        with mpath.open(encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{mpath} not found: a model's labels and settings are saved beside it") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{mpath} is not valid JSON: {exc}") from None
    for key in ("labels", "clean"):
        if key not in meta:
            raise DataError(f"{mpath} lacks {key!r}")
    model = keras.models.load_model(path)
    if model.output_shape[-1] != len(meta["labels"]):
        raise DataError(f"{path} has {model.output_shape[-1]} outputs but {mpath} lists {len(meta['labels'])} labels")
    return model, meta
