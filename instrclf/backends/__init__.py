"""The back ends: normalised log-mel spectrogram -> class probabilities, one module per model.

Each model's stack lives in ``instrclf/backends/<name>.py`` as ``stack(x, *, n_classes,
config)``, so editing one model reruns that model's stages only (its fingerprints, such as
``code/train-<name>.sha256``, hold ``instrclf/backends/<name>.py`` and no other back end).
The model names are those of :data:`instrclf.settings.MODEL_CONFIGS`; :func:`build` finds a
model's module by its name.
This module holds what every back end shares: the frame normalisation, the classic head,
the time pooling and the per-frame reshape.
"""

import importlib

from ..runtime import tf  # noqa: F401  (TensorFlow imported quietly, before keras)

import keras  # noqa: E402
from keras import layers, regularizers

from ..errors import ParameterError
from ..settings import MODEL_CONFIGS, ModelConfig, check_model


def head(x, *, n_classes, dense, dropout, l2):
    """Dropout, one regularised relu layer and the softmax shared by the classic stacks."""
    x = layers.Dropout(dropout, name="dropout")(x)
    # float32 whatever the precision: the regulariser's sum and the softmax need its range
    x = layers.Dense(dense, activation="relu", activity_regularizer=regularizers.l2(l2), dtype="float32", name="dense")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name="softmax")(x)


def time_pool(x, size: int):
    """Average the log-mel frames in groups of ``size`` (``padding="same"``); 1 leaves them."""
    if size > 1:
        x = layers.AveragePooling2D((size, 1), padding="same", name="time_pool")(x)
    return x


def frames(x):
    """``(batch, frames, n_mels, 1)`` -> ``(batch, frames, n_mels)``: one vector per frame."""
    return layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)



def stack_of(name: str):
    """The ``stack`` function of model ``name`` (its module ``instrclf.backends.<name>``)."""
    return importlib.import_module(f"{__name__}.{check_model(name)}").stack


def backend_name(name: str, fold: int) -> str:
    """The layer name of a fold's back end inside a saved model (unique within an ensemble)."""
    return f"{name}_fold{fold}"


def build(name: str, *, config: ModelConfig, input_shape: tuple, n_classes: int, fold: int) -> keras.Model:
    """Back end ``name`` of test fold ``fold``: dB spectrogram ``input_shape`` -> softmax over ``n_classes``.

    It starts with a LayerNormalization over the mel axis of each frame, then the
    model's stack, in the dtype policy ``config.precision`` (the softmax is float32).
    """
    builder, config_class = stack_of(name), MODEL_CONFIGS[name]
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
