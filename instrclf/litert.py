"""A LiteRT (TFLite) model run by ``ai-edge-litert``'s interpreter: no TensorFlow, no Keras imported.

:class:`LiteRtModel` offers what the classifier and the export parity use of a Keras
model: ``input_shape``, ``output_shape``, ``name`` and ``predict_on_batch``. A model
exported with a dynamic batch (``shape_signature[0] == -1``) is resized to each call's
batch; one with a fixed batch (the LSTM, whose recurrence TFLite builtins only lower at a
fixed batch) is called on slices of that batch, the last one padded with zeros.

An export (:mod:`instrclf.export`) carries two metadata entries, read here without
TensorFlow (:func:`read_metadata`): the model's card (:data:`CARD_METADATA`) and the
SHA-256 of the ``.keras`` file it was made from (:data:`SOURCE_METADATA`), which tells
the classifier whether an export still belongs to the ``.keras`` beside it.
"""

from pathlib import Path

import numpy as np

from .errors import DataError
from .runtime import filtered_stderr

#: The interpreter's threads: as many as the machine has (the classifier's only work).
THREADS = None

#: Name of the LiteRT metadata entry that holds the card's JSON.
CARD_METADATA = "instrclf_card"

#: Name of the LiteRT metadata entry that holds the hex SHA-256 of the ``.keras`` file exported.
SOURCE_METADATA = "instrclf_keras_sha256"


def read_metadata(flat: bytes, key: str) -> bytes:
    """The payload of metadata entry ``key`` of a LiteRT flatbuffer (DataError if absent)."""
    from ai_edge_litert.schema_py_generated import Model

    model = Model.GetRootAs(flat, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == key:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    raise DataError(f"LiteRT model has no metadata {key!r}")


class LiteRtModel:
    """A ``.tflite`` file, loaded once, callable on batches of windows ``(n, samples, 1)``."""

    def __init__(self, path, *, threads=THREADS):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            self.content = self.path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{self.path}: model not found") from None
        except OSError as exc:
            raise DataError(f"{self.path}: not a loadable LiteRT model (cannot be read: {exc.strerror})") from None
        try:
            self._interpreter = Interpreter(model_content=self.content, num_threads=threads)
            with filtered_stderr():  # the first allocation announces LiteRT's CPU delegate (INFO), nothing wrong
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise DataError(f"{self.path}: not a loadable LiteRT model ({reason})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        signature = [int(d) for d in self._input["shape_signature"]]
        self.batch = None if signature[0] == -1 else signature[0]
        self.input_shape = (None, *signature[1:])
        self.output_shape = (None, int(self._output["shape_signature"][-1]))
        self.name = self.path.name.split(".")[0]
        self._allocated = int(self._input["shape"][0])  # the batch the tensors are allocated for

    def metadata(self, key: str) -> bytes:
        """The payload of its metadata entry ``key`` (DataError naming the file if it has none)."""
        try:
            return read_metadata(self.content, key)
        except DataError as exc:
            raise DataError(f"{self.path}: {exc}") from None

    def _call(self, x: np.ndarray) -> np.ndarray:
        if self._allocated != len(x):
            self._interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            self._interpreter.allocate_tensors()
            self._allocated = len(x)
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output["index"]))

    def predict_on_batch(self, x) -> np.ndarray:
        """Probabilities ``(n, classes)`` of windows ``x`` ``(n, samples, 1)`` (float32)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.batch is None:
            return self._call(x)
        out = []
        for start in range(0, len(x), self.batch):
            part = x[start : start + self.batch]
            padded = np.concatenate([part, np.zeros((self.batch - len(part), *part.shape[1:]), np.float32)])
            out.append(self._call(padded)[: len(part)])
        return np.concatenate(out) if out else np.zeros((0, self.output_shape[1]), np.float32)
