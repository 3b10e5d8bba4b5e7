"""The saved model: front end and back ends joined, its card, saving and loading.

A model is two parts:

- the **front end** (:func:`instrclf.features.frontend`): raw 1-second windows -> log-mel
  spectrogram in dB, computed by kapre inside the model. It has no trainable weights, so
  the features stage computes it once per window instead of once per epoch;
- the **back end** (:func:`instrclf.backends.build`): spectrogram -> class probabilities,
  one module per model name of :data:`instrclf.settings.MODEL_CONFIGS`.

:func:`assemble` joins a front end and one or more trained back ends (their mean, for the
cross-validation ensemble) into one model that takes raw audio; it is saved as ``.keras``
and reloads with plain ``keras.models.load_model``. A :class:`instrclf.card.ModelCard` saved
beside it (``<name>.json``) carries its labels and every setting that shaped its input.
"""

import json
import os
import zipfile
from pathlib import Path

from .runtime import tf  # noqa: F401  (TensorFlow imported quietly, before keras)

import keras  # noqa: E402
from keras import layers

from .card import ModelCard, card_path, read_card
from .errors import DataError, ParameterError
from .io import atomic_file, remove_stale
from . import backends
from .features import frontend
from .settings import CleanSettings, FeatureSettings, ModelConfig


# --------------------------------------------------------------------------- the joined model


@keras.saving.register_keras_serializable(package="instrclf")
class Shift(layers.Layer):
    """Adds a constant to every frame of a spectrogram, one value per mel band (a colour shift, :mod:`instrclf.colour`)."""

    def __init__(self, values, **kwargs):
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, x):
        return x + keras.ops.reshape(keras.ops.convert_to_tensor(self.values, dtype=x.dtype), (1, 1, -1, 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"values": self.values}


@keras.saving.register_keras_serializable(package="instrclf")
class BandShift(layers.Layer):
    """Moves a spectrogram ``bands`` mel bands up (down if negative), repeating the edge band.

    The same move as :func:`instrclf.augment.mel_shift` with its shift fixed: the test-time
    views of ``predict.shift_average``.
    """

    def __init__(self, bands, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, x):
        n_mels = x.shape[2]
        index = [min(max(m - self.bands, 0), n_mels - 1) for m in range(n_mels)]
        return keras.ops.take(x, keras.ops.convert_to_tensor(index, dtype="int32"), axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"bands": self.bands}


def scores(mel, backs: list, *, shift_average: int = 0):
    """The mean of the back ends' probabilities for the spectrogram tensor ``mel``.

    With ``shift_average`` = r > 0 each back end sees the spectrum shifted by every whole
    number of bands in -r..r (:class:`BandShift`) and all their probabilities are averaged
    (``predict.shift_average``); 0: each back end sees ``mel`` as it is.
    """
    if not backs:
        raise ParameterError("a model needs at least one back end")
    views = [mel] if not shift_average else [
        BandShift(k, name=f"band_shift_{'m' if k < 0 else 'p'}{abs(k)}")(mel) for k in range(-shift_average, shift_average + 1)]
    outputs = [back(view) for back in backs for view in views]
    return outputs[0] if len(outputs) == 1 else layers.Average(name="mean_of_folds")(outputs)


def assemble(front: keras.Model, backs: list, *, name: str, shift=None, shift_average: int = 0) -> keras.Model:
    """One raw-audio model: the front end, then the mean of the back ends' probabilities.

    Parameters
    ----------
    front : keras.Model
        From :func:`instrclf.features.frontend`.
    backs : list of keras.Model
        Trained back ends on the front end's output (one per fold for an ensemble).
    name : str
        The model's name.
    shift : array-like or None
        One value per mel band added to the spectrogram before the back ends (a set's colour
        shift, ``instrclf classify --as-set``); None: none.
    shift_average : int
        Each back end's probabilities averaged over the spectrum shifted by -r..r bands
        (:func:`scores`, ``predict.shift_average``); 0: none.
    """
    inputs = keras.Input(front.input_shape[1:], name="audio")
    mel = front(inputs)
    if shift is not None:
        mel = Shift(shift, name="colour_shift")(mel)
    return keras.Model(inputs, scores(mel, backs, shift_average=shift_average), name=name)


def scorer(back: keras.Model, *, shift_average: int) -> keras.Model:
    """Back end ``back`` as the user model scores with it: spectrogram -> probabilities (:func:`scores`)."""
    if not shift_average:
        return back
    mel = keras.Input(back.input_shape[1:], name="spectrogram")
    return keras.Model(mel, scores(mel, [back], shift_average=shift_average), name=f"{back.name}_scorer")


def for_inference(back: keras.Model) -> keras.Model:
    """A copy of back end ``back`` with its weights and no training state.

    Training compiles each back end, and a fold model saved after training keeps its
    optimizer (Adam's two moments per weight) and compile settings, which Keras restores on
    loading. A user model assembled from such back ends would save all of it again: the copy
    (the architecture from its config, the weights set) is what prediction needs, about a
    third of the bytes.
    """
    copy = keras.Model.from_config(back.get_config())
    copy.set_weights(back.get_weights())
    return copy


def back_ends(model: keras.Model) -> list:
    """The trained back ends of a user model made by :func:`assemble`, in order."""
    return [layer for layer in model.layers
            if type(layer).__name__ not in ("InputLayer", "BandShift")
            and layer.name not in ("frontend", "mean_of_folds", "colour_shift")]


def shift_average_of(model: keras.Model) -> int:
    """The ``shift_average`` a user model made by :func:`assemble` was built with (0: none)."""
    return max((abs(layer.bands) for layer in model.layers if isinstance(layer, BandShift)), default=0)


def build(name: str, *, config: ModelConfig, clean: CleanSettings, features: FeatureSettings, n_classes: int, fold=0):
    """Model ``name`` on raw audio, untrained: the front end, then back end ``name``."""
    front = frontend(clean=clean, features=features)
    back = backends.build(name, config=config, input_shape=front.output_shape[1:], n_classes=n_classes, fold=fold)
    return assemble(front, [back], name=name)


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
