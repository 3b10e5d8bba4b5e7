"""Exports of a user model for runtimes without Keras, and their parity with the Keras model.

A user model (``models/<model>.keras``, its card beside it) is exported to
``models/export/<model>/`` (the layout is :func:`instrclf.card.export_paths`):

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
  files also carry it as metadata ``instrclf_card``, and the SHA-256 of the ``.keras``
  file they were made from as ``instrclf_keras_sha256``: ``instrclf classify`` runs an
  export in place of its ``.keras`` only when both still match.

A format that cannot be converted raises :class:`ExportError`, one line naming the model,
the format and the operator (or the reason). :func:`parity` compares each export with the
Keras model window by window. A model trained in a mixed precision is exported from its
float32 twin (:func:`float32_twin`: same weights, float32 arithmetic), the reference of the
parity figures; how far the trained precision itself lies from it is reported beside them
(``keras_mixed_*``).
"""

import hashlib
import heapq
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from .runtime import NOISE, filtered_stderr, tf  # TensorFlow imported quietly, before keras

import keras  # noqa: E402

from . import data, evaluate, layout
from .card import card_path, export_paths
from .errors import InstrclfError, ParameterError
from .io import atomic_dir, sha256_of
from .litert import CARD_METADATA, SOURCE_METADATA
from .models import back_ends, scores, shift_average_of
from .settings import EXPORT_FORMATS, INFERENCE_BATCH

#: Formats a user may go without: one that fails is reported in one line and left out.
OPTIONAL = ("tflite_int8", "onnx")

#: Float exports must match Keras within this, on every window's probabilities, and name the same
#: class on every window but ties (Keras's two best within twice this: rounding may break them).
FLOAT_TOLERANCE = 1e-4

#: int8 is kept when its top-1 agrees with Keras on at least this share of windows and its
#: file accuracy is within this many points of Keras's.
INT8_TARGETS = {"top1_agreement": 0.995, "file_accuracy_points": 0.5}

#: ONNX opset written (onnxruntime >= 1.16 runs it).
ONNX_OPSET = 17


class ExportError(InstrclfError):
    """A format could not be made: one line naming the model, the format and the operator or reason."""


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
        A user model (:func:`instrclf.models.assemble`): front end, back ends (over shifted
        views of the spectrum, if it was built so), their mean.
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
    probs = scores(front(inputs), back_ends(model), shift_average=shift_average_of(model))
    return keras.Model(inputs, probs, name=model.name)


def _float32_config(value):
    """A Keras config with every mixed dtype policy replaced by float32 (the weights are float32 either way)."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and isinstance(value.get("config"), dict):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {key: ("float32" if key == "dtype" and isinstance(item, str) and item.startswith("mixed_")
                      else _float32_config(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    return value


def float32_twin(model: keras.Model) -> keras.Model:
    """``model`` itself when it computes in float32, else the same layers and weights computing in float32.

    A back end trained under a mixed policy (``models.<name>.precision``) keeps float32
    weights but computes in bfloat16 or float16, which TFLite's builtins and ONNX lack; its
    exports are made from this twin, the same function without the half-precision rounding.
    """
    if all(layer.dtype_policy.name == "float32" for layer in _all_layers(model)):
        return model
    twin = keras.Model.from_config(_float32_config(model.get_config()))
    twin.set_weights(model.get_weights())
    return twin


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


# --------------------------------------------------------------------------- conversions

#: What TFLite's converter prints although nothing is wrong (on top of :data:`instrclf.runtime.NOISE`).
CONVERTER_NOISE = re.compile(
    NOISE.pattern + r"|tf_tfl_flatbuffer_helpers\.cc|mlir_graph_optimization_pass\.cc|"
    r"Please consider providing the trackable_obj|tensorflow/cc/saved_model/|fingerprinting\.cc|"
    r"Estimated count of arithmetic ops|^\s*$|TF 2\.20\. Please use the LiteRT|migration guide|for details\.|"
    r"devices\.cc:\d+\] Number of eligible GPUs|single_machine\.cc:\d+\] Starting new|interpreter is deprecated|warnings\.warn\(_INTERPRETER"
)


#: Matches every line: what a conversion attempt that has a fallback prints is dropped.
_EVERYTHING = re.compile("")


def operator_of(exc: Exception) -> str:
    """The operator a conversion error is about, and why, on one line (the message's first error otherwise)."""
    text = str(exc)
    found = re.search(r"'(tf\.\w+)' op ([^\n]*)", text) or re.search(r"failed to legalize operation '(tf\.\w+)'()", text)
    if found:
        reason = found.group(2).split(" loc(")[0].strip().rstrip(".") or "has no TFLite builtin"
        return f"operator {found.group(1)}: {reason[:160]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((line for line in lines if "error" in line.lower()), lines[0] if lines else type(exc).__name__)
    return f"{type(exc).__name__}: {first[:200]}"


def _signature(model: keras.Model, *, batch) -> list:
    return [tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32, name="audio")]


def _tflite_bytes(model: keras.Model, *, batch, int8: bool) -> bytes:
    """Convert ``model`` with builtins only, through a SavedModel (the route that keeps Keras 3 weights)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False, input_signature=_signature(model, batch=batch))
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no data given: dynamic-range int8 weights
        return bytes(converter.convert())


def to_tflite(model: keras.Model, *, name: str, card_json: str, keras_sha256: str | None = None,
              int8: bool = False) -> bytes:
    """The LiteRT flatbuffer of ``model`` (its real-valued rebuild), the card in its metadata.

    ``keras_sha256``, the digest of the ``.keras`` file ``model`` was loaded from, is
    recorded as metadata :data:`instrclf.litert.SOURCE_METADATA` when given.

    A dynamic batch is tried first; a model whose ops builtins lower only at a fixed batch
    (an LSTM's tensor lists) is exported at a fixed batch of :data:`INFERENCE_BATCH`.

    Raises
    ------
    ExportError
        ``<name>: tflite: operator tf.X: <reason>`` (``tflite_int8`` for ``int8``).
    """
    fmt = "tflite_int8" if int8 else "tflite"
    real = real_model(model, name=name)
    failure = None
    for batch in (None, INFERENCE_BATCH):
        try:  # the dynamic batch's failure is expected for some models: its converter errors are not shown
            with filtered_stderr(CONVERTER_NOISE if batch is not None else _EVERYTHING):
                flat = _tflite_bytes(real, batch=batch, int8=int8)
        except Exception as exc:  # the converter raises ConverterError and others: all mean "not convertible"
            failure = exc
            continue
        source = {} if keras_sha256 is None else {SOURCE_METADATA: keras_sha256.encode()}
        return with_metadata(flat, {CARD_METADATA: card_json.encode(), **source})
    raise ExportError(f"{name}: {fmt}: {operator_of(failure)}")


def with_metadata(flat: bytes, entries: dict) -> bytes:
    """A LiteRT flatbuffer with ``entries`` (name -> bytes) added to its metadata."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flat))
    model.metadata = list(model.metadata or [])
    for key, payload in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = key, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_savedmodel(model: keras.Model, directory, *, card_file) -> None:
    """Write ``model`` itself (kapre front end and all) as a SavedModel in ``directory``, ``card_file`` an asset.

    Signature ``serving_default``: ``audio`` ``(None, window_length, 1)`` float32 -> ``probabilities``.
    """
    module = tf.Module()
    module.model = model  # tracks its variables
    module.card = tf.saved_model.Asset(str(card_file))
    module.serve = tf.function(lambda audio: {"probabilities": model(audio, training=False)},
                               input_signature=_signature(model, batch=None))
    with filtered_stderr(CONVERTER_NOISE):
        tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    _drop_fingerprint_uuid(Path(directory) / "fingerprint.pb")


def _drop_fingerprint_uuid(path) -> None:
    """Clear the random ``uuid`` TensorFlow writes into a SavedModel's ``fingerprint.pb`` (the hashes stay).

    It is drawn anew at every save, so two exports of one model would differ by it alone;
    loading never reads it.
    """
    from tensorflow.core.protobuf import fingerprint_pb2

    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(Path(path).read_bytes())
    fingerprint.ClearField("uuid")
    Path(path).write_bytes(fingerprint.SerializeToString(deterministic=True))


def to_onnx(model: keras.Model, *, name: str) -> bytes:
    """The ONNX model of ``model``'s real-valued rebuild, by tf2onnx (opset :data:`ONNX_OPSET`).

    Raises
    ------
    ExportError
        ``<name>: onnx: <reason>``: tf2onnx not installed, or an operator it cannot convert.
    """
    try:
        import tf2onnx
    except ImportError as exc:
        raise ExportError(f"{name}: onnx: tf2onnx is not installed ({exc.msg})") from None
    real = real_model(model, name=name)
    try:
        with filtered_stderr(CONVERTER_NOISE):
            proto, _ = tf2onnx.convert.from_keras(real, input_signature=_signature(real, batch=None), opset=ONNX_OPSET)
    except Exception as exc:  # tf2onnx raises many types; all mean "not convertible"
        raise ExportError(f"{name}: onnx: {operator_of(exc)}") from None
    return canonical_onnx(proto).SerializeToString(deterministic=True)


def canonical_onnx(proto):
    """``proto`` with one fixed order and fixed names for its nodes, tensors and constants.

    tf2onnx numbers its constants in no fixed order, and its optimizer merges identical
    subgraphs (the five fold models' normalisations of the same spectrogram) keeping
    whichever copy it meets first, so one model could give different files. Here every node
    gets a structural key (its operator, attributes and the keys of its inputs: a Merkle
    hash that no name enters), nodes are ordered topologically with ties broken by that
    key, and nodes, intermediate tensors and constants are renamed by position. The graph's
    inputs and outputs keep their names; the graph computes exactly the same.
    """
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    keys, memo = {}, {}

    def tensor_key(name):
        if name in memo:
            return memo[name]
        if name in initializers:
            nameless = type(initializers[name])()
            nameless.CopyFrom(initializers[name])
            nameless.name = ""  # the content alone: its name is the converter's
            memo[name] = hashlib.sha256(nameless.SerializeToString(deterministic=True)).hexdigest()
        elif name in producer:
            node = producer[name]
            memo[name] = f"{node_key(node)}:{list(node.output).index(name)}"
        else:  # a graph input, or "" for an omitted optional input
            memo[name] = f"input:{name}"
        return memo[name]

    def node_key(node):
        if id(node) not in keys:
            attributes = b"".join(a.SerializeToString(deterministic=True) for a in sorted(node.attribute, key=lambda a: a.name))
            text = node.op_type.encode() + node.domain.encode() + attributes + "|".join(tensor_key(i) for i in node.input).encode()
            keys[id(node)] = hashlib.sha256(text).hexdigest()
        return keys[id(node)]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph.node) + 1000))
    order = _topological(graph.node, producer, key=node_key)
    outputs = {out.name for out in graph.output}
    names = {}
    for i, node in enumerate(order):
        for k, out in enumerate(node.output):
            names[out] = out if out in outputs else f"t{i}_{k}"
        node.name = f"n{i}_{node.op_type}"
    constants = []
    for node in order:
        constants += [name for name in node.input if name in initializers and name not in constants]
    constants += sorted(set(initializers) - set(constants), key=tensor_key)
    names |= {old: f"instrclf_const_{i}" for i, old in enumerate(constants)}
    for node in order:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names[name] for name in node.output]
    kept = [initializers[old] for old in constants]
    for init in kept:
        init.name = names[init.name]
    for info in graph.value_info:
        info.name = names.get(info.name, info.name)
    infos = sorted(graph.value_info, key=lambda info: info.name)
    del graph.value_info[:]
    graph.value_info.extend(infos)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(order)
    return proto


def _topological(nodes, producer, *, key) -> list:
    """``nodes`` in an order where each follows its inputs' producers; among the ready ones, by ``key``."""
    waiting, users = {}, {}
    for node in nodes:
        for parent in {id(producer[i]) for i in node.input if i in producer}:
            users.setdefault(parent, []).append(node)
    for node in nodes:
        waiting[id(node)] = len({id(producer[i]) for i in node.input if i in producer})
    ready = [(key(node), n, node) for n, node in enumerate(nodes) if waiting[id(node)] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, node = heapq.heappop(ready)
        order.append(node)
        for user in users.get(id(node), []):
            waiting[id(user)] -= 1
            if waiting[id(user)] == 0:
                heapq.heappush(ready, (key(user), len(order), user))
    if len(order) != len(nodes):
        raise ExportError("onnx: the converted graph has a cycle")
    return order


# --------------------------------------------------------------------------- running the exports


def predictor(fmt: str, path):
    """A function ``windows (n, samples, 1) -> probabilities (n, classes)`` running export ``path`` of format ``fmt``."""
    if fmt in ("tflite", "tflite_int8"):
        from .litert import LiteRtModel

        return LiteRtModel(path).predict_on_batch
    if fmt == "savedmodel":
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda x: serve(audio=tf.constant(x, tf.float32))["probabilities"].numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: np.asarray(x, np.float32)})[0]
    raise ParameterError(f"export format must be one of {list(EXPORT_FORMATS)}, got {fmt!r}")


def window_probabilities(predictors: dict, clean_dir, index, *, n_samples: int, desc: str = "parity") -> dict:
    """Every predictor's probabilities of every window of ``index``, the windows read once: ``{name: (n, classes)}``.

    A progress bar (``desc``, windows; on stderr, shown on a terminal only) counts the windows.
    """
    from tqdm import tqdm

    out = {name: [] for name in predictors}
    with tqdm(total=len(index), unit="window", desc=desc, disable=None, mininterval=1.0) as bar:
        for start in range(0, len(index), INFERENCE_BATCH):
            x = data.load_windows(clean_dir, index.iloc[start : start + INFERENCE_BATCH], n_samples=n_samples)
            for name, predict in predictors.items():
                out[name].append(np.asarray(predict(x), dtype=np.float64))
            bar.update(len(x))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def file_accuracy(probs: np.ndarray, index, *, labels) -> float:
    """Share of source notes whose mean window probabilities pick their ``label`` (as ``predict`` counts them)."""
    notes = evaluate.aggregate(index, probs, labels=labels)
    return float(np.mean(notes["predicted"] == notes["label"]))


def parity(reference: np.ndarray, probs: np.ndarray, index, *, labels) -> dict:
    """How export ``probs`` compares with Keras ``reference`` on every window: the flat figures of one format.

    ``top1_ties``: windows whose top-1 differs although Keras's two best classes lie within
    ``2 * FLOAT_TOLERANCE`` of each other (a tie at float precision, which any rounding may
    break either way); ``top1_flips`` are the other disagreements.
    """
    differ = probs.argmax(axis=1) != reference.argmax(axis=1)
    best_two = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else np.zeros((len(reference), 2))
    tie = (best_two[:, 1] - best_two[:, 0]) <= 2 * FLOAT_TOLERANCE
    return {
        "max_abs_diff": float(np.abs(probs - reference).max()) if len(probs) else 0.0,
        "top1_agreement": float(np.mean(~differ)),
        "top1_ties": int(np.sum(differ & tie)),
        "top1_flips": int(np.sum(differ & ~tie)),
        "file_accuracy": file_accuracy(probs, index, labels=labels),
    }


def meets_targets(fmt: str, figures: dict, *, keras_file_accuracy: float) -> bool:
    """Whether a format's figures meet its target: float within :data:`FLOAT_TOLERANCE`, int8 :data:`INT8_TARGETS`."""
    if fmt == "tflite_int8":
        drop = abs(figures["file_accuracy"] - keras_file_accuracy) * 100
        return figures["top1_agreement"] >= INT8_TARGETS["top1_agreement"] and drop <= INT8_TARGETS["file_accuracy_points"]
    return figures["max_abs_diff"] <= FLOAT_TOLERANCE and figures["top1_flips"] == 0


def size_of(path) -> int:
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_format(fmt: str, model, paths: dict, *, name: str, card_json: str, keras_sha256: str) -> None:
    """Write export ``fmt`` of ``model`` to ``paths[fmt]`` (and its card beside it); ExportError if it cannot be made.

    ``keras_sha256`` is the digest of the ``.keras`` file ``model`` comes from (recorded in the LiteRT files).
    """
    target = paths[fmt]
    if fmt == "savedmodel":
        to_savedmodel(model, target, card_file=card_path(paths["tflite"]))
        return
    content = to_onnx(model, name=name) if fmt == "onnx" else to_tflite(model, name=name, card_json=card_json,
                                                                          keras_sha256=keras_sha256,
                                                                          int8=fmt == "tflite_int8")
    target.write_bytes(content)
    card_path(target).write_text(card_json, encoding="utf-8")


def run(model_path, *, clean_dir, out_dir, formats=EXPORT_FORMATS) -> dict:
    """Export a user model to ``out_dir`` (replaced as a whole on success) and measure each export's parity.

    Parameters
    ----------
    model_path : str or Path
        ``models/<model>.keras``, its card beside it.
    clean_dir : str or Path
        The clean stage's folder: every window is compared.
    out_dir : str or Path
        ``models/export/<model>``.
    formats : tuple of str
        Formats to make (``export.formats``; :data:`instrclf.settings.EXPORT_FORMATS`).

    Returns
    -------
    dict
        ``results``: flat figures (``<format>_max_abs_diff``, ``_top1_agreement``,
        ``_file_accuracy``, ``_bytes``, ``_kept``; ``keras_file_accuracy``, ``windows``,
        ``files``); ``skipped``: one line per optional format that was not kept and why.

    Raises
    ------
    ExportError
        A float format (LiteRT, SavedModel) that cannot be made or misses
        :data:`FLOAT_TOLERANCE`; one line naming the model, the format and the cause.
    """
    from . import models

    model, card = models.load(model_path)
    name, card_json = card.model, card.model_dump_json(indent=2) + "\n"
    keras_sha256 = sha256_of(model_path)
    index = layout.read_index(clean_dir)
    results, skipped = {}, []
    twin = float32_twin(model)  # what every format is made from, and compared with
    with atomic_dir(out_dir) as tmp:
        paths = export_paths(tmp, name)
        card_path(paths["tflite"]).write_text(card_json, encoding="utf-8")
        made = {}
        for fmt in formats:
            print(f"{name}: making {fmt}", file=sys.stderr, flush=True)  # a conversion can take minutes
            try:
                write_format(fmt, twin, paths, name=name, card_json=card_json, keras_sha256=keras_sha256)
            except ExportError as exc:
                if fmt not in OPTIONAL:
                    raise
                skipped.append(str(exc))
                results[f"{fmt}_kept"] = 0
                continue
            with filtered_stderr(CONVERTER_NOISE):
                made[fmt] = predictor(fmt, paths[fmt])
        mixed = {} if twin is model else {"keras_mixed": model.predict_on_batch}
        probs = window_probabilities({"keras": twin.predict_on_batch, **mixed, **made}, clean_dir, index,
                                     n_samples=card.clean.window_length, desc=f"{name}: {', '.join(['keras', *made])}")
        keras_accuracy = file_accuracy(probs["keras"], index, labels=card.labels)
        results |= {"windows": len(index), "files": int(index["Path"].nunique()), "keras_file_accuracy": keras_accuracy}
        if mixed:  # the trained policy's own figures beside its float32 twin's
            results |= {f"keras_mixed_{key}": value for key, value in parity(probs["keras"], probs["keras_mixed"], index,
                                                                             labels=card.labels).items()}
        for fmt in made:
            figures = parity(probs["keras"], probs[fmt], index, labels=card.labels)
            kept = meets_targets(fmt, figures, keras_file_accuracy=keras_accuracy)
            if not kept and fmt not in OPTIONAL:
                raise ExportError(f"{name}: {fmt}: misses parity with Keras (max |dp| {figures['max_abs_diff']:.3g}, "
                                  f"{figures['top1_flips']} window(s) with another top-1; needs <= {FLOAT_TOLERANCE:g} and none)")
            results |= {f"{fmt}_{key}": value for key, value in figures.items()}
            results |= {f"{fmt}_bytes": size_of(paths[fmt]), f"{fmt}_kept": int(kept)}
            if not kept:
                skipped.append(f"{name}: {fmt}: not kept: max |dp| {figures['max_abs_diff']:.3g}, top-1 agreement "
                               f"{figures['top1_agreement']:.4f} ({figures['top1_flips']} window(s) not ties), file accuracy "
                               f"{figures['file_accuracy']:.4f} vs Keras {keras_accuracy:.4f}")
                _remove(paths[fmt])
    return {"results": results, "skipped": skipped}


def _remove(path) -> None:
    """Remove an export that is not kept, and its card."""
    path = Path(path)
    path.unlink()
    card_path(path).unlink(missing_ok=True)
