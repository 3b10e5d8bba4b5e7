"""Exports of a user model for runtimes without Keras, and their parity with the Keras model.

A user model (``models/<model>.keras``, its card beside it) is exported to
``models/export/<model>/``:

- ``<model>.tflite``: LiteRT (TFLite), float32, **builtin operators only** (no Flex), so
  ``ai-edge-litert``'s interpreter runs it without TensorFlow. kapre's STFT computes a
  complex FFT, which TFLite's builtins lack, so the front end is rebuilt as a real
  DFT by convolution (:class:`RealMelSpectrogram`: framing, Hann window and the DFT's
  cosine and sine rows are one fixed Conv1D kernel), followed by kapre's own mel
  filterbank and decibel scaling; the trained back ends are reused as they are. It takes
  any batch of windows.
- ``<model>.int8.tflite``: the same with dynamic-range int8 weights; kept only when it
  meets :data:`INT8_TARGETS`.
- ``<model>.savedmodel/``: a TensorFlow SavedModel of the Keras model itself, signature
  ``serving_default``: ``audio`` ``(None, window_length, 1)`` float32 -> ``probabilities``;
  the card is one of its assets.
- ``<model>.onnx``: ONNX by tf2onnx, of the same rebuilt model as LiteRT, when tf2onnx is
  installed.
- ``<model>.json``: the card (``<model>.int8.json`` beside the int8 model); the LiteRT
  files also carry it as metadata ``instrclf_card``.

A format that cannot be converted raises :class:`ExportError`, one line naming the model,
the format and the operator (or the reason). :func:`parity` compares each export with the
Keras model window by window.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .runtime import tf  # TensorFlow imported quietly, before keras

import keras  # noqa: E402

from . import data, layout
from .errors import InstrclfError
from .settings import INFERENCE_BATCH

#: The formats, in the order they are exported and reported.
FORMATS = ("tflite", "tflite_int8", "savedmodel", "onnx")

#: Formats a user may go without: one that fails is reported in one line and left out.
OPTIONAL = ("tflite_int8", "onnx")

#: Float exports must match Keras within this, on every window's probabilities.
FLOAT_TOLERANCE = 1e-4

#: int8 is kept when its top-1 agrees with Keras on at least this share of windows and its
#: file accuracy is within this many points of Keras's.
INT8_TARGETS = {"top1_agreement": 0.995, "file_accuracy_points": 0.5}

#: Name of the LiteRT metadata entry that holds the card's JSON.
CARD_METADATA = "instrclf_card"

#: ONNX opset written (onnxruntime >= 1.16 runs it).
ONNX_OPSET = 17


class ExportError(InstrclfError):
    """A format could not be made: one line naming the model, the format and the operator or reason."""


def export_paths(out_dir, model: str) -> dict:
    """Where each format of ``model`` is written inside ``out_dir``: ``{format: Path}``."""
    out_dir = Path(out_dir)
    return {
        "tflite": out_dir / f"{model}.tflite",
        "tflite_int8": out_dir / f"{model}.int8.tflite",
        "savedmodel": out_dir / f"{model}.savedmodel",
        "onnx": out_dir / f"{model}.onnx",
    }


# --------------------------------------------------------------------------- the real-valued front end


@keras.saving.register_keras_serializable(package="instrclf")
class RealMelSpectrogram(keras.layers.Layer):
    """kapre's log-mel front end with real arithmetic only: one Conv1D for the STFT.

    The kernel's column ``k`` is the Hann window times ``cos(2 pi k t / n_fft)`` (the
    real part) and, from column ``n_freq`` on, times ``sin`` (the imaginary part, sign
    aside), for ``t < win_length``: ``tf.signal.stft`` pads each frame at its end to
    ``n_fft``, so those samples are all the DFT sees. The magnitude, kapre's mel
    filterbank (copied from the trained model) and kapre's decibel scaling follow.
    """

    def __init__(self, *, n_fft, win_length, hop_length, filterbank, amin, ref_value, dynamic_range, **kwargs):
        super().__init__(**kwargs)
        self.n_fft, self.win_length, self.hop_length = int(n_fft), int(win_length), int(hop_length)
        self.amin, self.ref_value, self.dynamic_range = float(amin), float(ref_value), float(dynamic_range)
        self.filterbank_values = np.asarray(filterbank, dtype=np.float32)
        # constants, not weights: nothing here is trained, and they are folded into the graph as they are
        self.kernel_values = dft_kernel(n_fft=self.n_fft, win_length=self.win_length)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, n_samples: int) -> int:
        """Frames of a window of ``n_samples`` (``pad_end``: the last frame is zero-padded)."""
        return -(-n_samples // self.hop_length)

    def call(self, x):
        from keras import ops

        n_samples = x.shape[1]
        frames = self.frames(n_samples)
        pad = (frames - 1) * self.hop_length + self.win_length - n_samples
        x = ops.pad(x, [[0, 0], [0, max(pad, 0)], [0, 0]])
        spec = ops.conv(x, ops.convert_to_tensor(self.kernel_values), strides=self.hop_length, padding="valid")[:, :frames]
        re, im = spec[..., : self.n_freq], spec[..., self.n_freq :]
        magnitude = ops.sqrt(re * re + im * im)
        mel = ops.matmul(magnitude, ops.convert_to_tensor(self.filterbank_values))
        log10 = float(np.log(10.0))
        db = 10.0 * ops.log(ops.maximum(mel, self.amin)) / log10
        db = db - 10.0 * float(np.log10(max(self.amin, self.ref_value)))
        db = ops.maximum(db, ops.max(db, axis=(1, 2), keepdims=True) - self.dynamic_range)
        return ops.expand_dims(db, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames(input_shape[1]), self.filterbank_values.shape[1], 1)

    def get_config(self):
        return super().get_config() | {
            "n_fft": self.n_fft, "win_length": self.win_length, "hop_length": self.hop_length,
            "filterbank": self.filterbank_values.tolist(), "amin": self.amin, "ref_value": self.ref_value,
            "dynamic_range": self.dynamic_range,
        }


def dft_kernel(*, n_fft: int, win_length: int) -> np.ndarray:
    """The STFT as a Conv1D kernel ``(win_length, 1, 2 * (n_fft // 2 + 1))``: windowed cosines, then sines.

    Parameters
    ----------
    n_fft : int
        DFT length (>= ``win_length``).
    win_length : int
        Samples per frame; the periodic Hann window of ``tf.signal.hann_window``.
    """
    t = np.arange(win_length)[:, None]
    k = np.arange(n_fft // 2 + 1)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    angle = 2 * np.pi * ((t * k) % n_fft) / n_fft
    kernel = np.concatenate([np.cos(angle), np.sin(angle)], axis=1) * window[:, None]
    return kernel[:, None, :].astype(np.float32)


def _kapre_layers(model: keras.Model, *, name: str) -> dict:
    """The kapre layers of ``model``'s front end by class name, checked to be what :class:`RealMelSpectrogram` computes."""
    front = model.get_layer("frontend").get_layer("melspectrogram")
    found = {type(layer).__name__: layer for layer in front.layers}
    expected = ["STFT", "Magnitude", "ApplyFilterbank", "MagnitudeToDecibel"]
    if list(found) != expected:
        raise ExportError(f"{name}: tflite: front end {list(found)} is not kapre's log-mel {expected}")
    stft = found["STFT"].get_config()
    unsupported = {
        "window_name": stft["window_name"] not in (None, "hann_window"),
        "pad_begin": stft["pad_begin"],
        "pad_end": not stft["pad_end"],
        "input_data_format": stft["input_data_format"] != "channels_last",
        "output_data_format": stft["output_data_format"] != "channels_last",
    }
    bad = [key for key, refused in unsupported.items() if refused]
    if bad:
        raise ExportError(f"{name}: tflite: kapre STFT with {bad[0]}={stft[bad[0]]!r} has no real-valued rebuild here")
    return found


def real_model(model: keras.Model, *, name: str) -> keras.Model:
    """``model`` with its kapre front end replaced by :class:`RealMelSpectrogram`; the back ends are reused as they are.

    Parameters
    ----------
    model : keras.Model
        A user model (:func:`instrclf.models.assemble`): front end, back ends, their mean.
    name : str
        Its name, for error messages.
    """
    kapre_layers = _kapre_layers(model, name=name)
    stft, db = kapre_layers["STFT"].get_config(), kapre_layers["MagnitudeToDecibel"].get_config()
    front = RealMelSpectrogram(
        n_fft=stft["n_fft"], win_length=stft["win_length"], hop_length=stft["hop_length"],
        filterbank=keras.ops.convert_to_numpy(kapre_layers["ApplyFilterbank"].filterbank),
        amin=db["amin"], ref_value=db["ref_value"], dynamic_range=db["dynamic_range"], name="real_melspectrogram",
    )
    inputs = keras.Input(model.input_shape[1:], name="audio")
    mel = front(inputs)
    backs = [layer for layer in model.layers if type(layer).__name__ != "InputLayer" and layer.name != "frontend"
             and layer.name != "mean_of_folds"]
    outputs = [back(mel) for back in backs]
    probs = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="mean_of_folds")(outputs)
    return keras.Model(inputs, probs, name=model.name)
