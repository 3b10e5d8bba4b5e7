"""Tests of the LiteRT runtime (instrclf.litert) on tiny flatbuffers built here: no TensorFlow, no Keras.

Each model is one fully connected layer (``weights`` ``(classes, samples)``, no bias) from windows
``(n, samples, 1)`` to ``(n, classes)``: its output is ``x[..., 0] @ weights.T``, so every row can be
checked against the window it came from, whatever the batching.
"""

import hashlib

import flatbuffers
import numpy as np
import pytest

from instrclf.errors import DataError
from instrclf.io import sha256_of
from instrclf.litert import LiteRtModel, read_metadata

WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5  # 3 classes, 4-sample windows


def tiny_tflite(weights=WEIGHTS, *, batch=None, metadata=None, custom_op=None) -> bytes:
    """A LiteRT flatbuffer: input ``(batch, samples, 1)`` -> FULLY_CONNECTED -> ``(batch, classes)``.

    ``batch`` None: a dynamic batch (-1). A fixed ``batch`` runs at that batch only, as the
    exported LSTM does: a RESHAPE to the constant shape ``(batch, samples)`` comes first, so
    the model cannot be resized to another batch. ``custom_op``: the layer is a custom op of
    that name instead, which no interpreter resolves.
    """
    import ai_edge_litert.schema_py_generated as s

    weights = np.asarray(weights, np.float32)
    classes, samples = weights.shape

    def tensor(name, shape, signature, buffer, kind=s.TensorType.FLOAT32):
        t = s.TensorT()
        t.name, t.shape, t.shapeSignature, t.type, t.buffer = name, shape, signature, kind, buffer
        return t

    def buffer(array):
        b = s.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        buffers.append(b)
        return len(buffers) - 1

    def code_of(builtin, name=None):
        code = s.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.customCode, code.version = name, 1
        codes.append(code)
        return len(codes) - 1

    def operator(code, inputs, outputs, kind=None, options=None):
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
        if kind is not None:
            op.builtinOptionsType, op.builtinOptions = kind, options
        operators.append(op)

    first, signature = (1, -1) if batch is None else (batch, batch)
    buffers, codes, operators = [s.BufferT()], [], []  # buffer 0: the empty one every activation points at
    tensors = [tensor("audio", [first, samples, 1], [signature, samples, 1], 0),
               tensor("weights", [classes, samples], [classes, samples], buffer(weights)),
               tensor("probabilities", [first, classes], [signature, classes], 0)]
    layer_input = 0
    if batch is not None:
        tensors += [tensor("shape", [2], [2], buffer(np.array([batch, samples], np.int32)), s.TensorType.INT32),
                    tensor("flat", [batch, samples], [batch, samples], 0)]
        options = s.ReshapeOptionsT()
        options.newShape = [batch, samples]
        operator(code_of(s.BuiltinOperator.RESHAPE), [0, 3], [4], s.BuiltinOptions.ReshapeOptions, options)
        layer_input = 4
    if custom_op:
        operator(code_of(s.BuiltinOperator.CUSTOM, custom_op), [layer_input, 1], [2])
    else:
        operator(code_of(s.BuiltinOperator.FULLY_CONNECTED), [layer_input, 1, -1], [2],
                 s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT())
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [0], [2], operators, "main"
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [graph], buffers
    model.metadata = []
    for key, payload in (metadata or {}).items():
        entry = s.MetadataT()
        entry.name, entry.buffer = key, buffer(np.frombuffer(payload, np.uint8))
        model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def windows(n, samples=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, samples, 1)).astype(np.float32)


def expected(x):
    return np.asarray(x, np.float32)[..., 0] @ WEIGHTS.T


@pytest.fixture
def saved(tmp_path):
    """Write a tiny model as ``<name>``; returns its path."""
    def save(name="baseline.tflite", **kwargs):
        path = tmp_path / name
        path.write_bytes(tiny_tflite(**kwargs))
        return path
    return save


def test_sha256_of_is_the_files_digest(tmp_path):
    big = tmp_path / "big.keras"
    data = np.random.default_rng(1).integers(0, 256, (1 << 20) + 12345, dtype=np.uint8).tobytes()  # two blocks
    big.write_bytes(data)
    assert sha256_of(big) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_of(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_metadata_is_read_by_name_and_a_missing_entry_is_named():
    flat = tiny_tflite(metadata={"first": b"one", "instrclf_card": b'{"format": 1}'})
    assert read_metadata(flat, "instrclf_card") == b'{"format": 1}'
    assert read_metadata(flat, "first") == b"one"
    with pytest.raises(DataError, match=r"^LiteRT model has no metadata 'second'$"):
        read_metadata(flat, "second")


def test_a_models_missing_metadata_names_its_file(saved):
    path = saved(metadata={"instrclf_card": b"{}"})
    model = LiteRtModel(path)
    assert model.metadata("instrclf_card") == b"{}"
    with pytest.raises(DataError) as excinfo:
        model.metadata("instrclf_keras_sha256")
    assert str(excinfo.value) == f"{path}: LiteRT model has no metadata 'instrclf_keras_sha256'"


def test_a_dynamic_batch_model_describes_itself_and_takes_any_batch(saved):
    model = LiteRtModel(saved("conv1d.int8.tflite"))
    assert (model.name, model.batch, model.input_shape, model.output_shape) == ("conv1d", None, (None, 4, 1), (None, 3))
    for n in (5, 1, 7, 7):  # grows, shrinks, stays
        x = windows(n, seed=n)
        probs = model.predict_on_batch(x)
        assert probs.shape == (n, 3) and probs.dtype == np.float32
        np.testing.assert_allclose(probs, expected(x), rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_model_gives_one_row_per_window_in_order(saved):
    model = LiteRtModel(saved("lstm.tflite", batch=3))
    assert (model.batch, model.input_shape, model.output_shape) == (3, (None, 4, 1), (None, 3))
    for n in (1, 3, 5, 7):  # part of one batch, one batch, padded last batches
        x = windows(n, seed=n)
        np.testing.assert_allclose(model.predict_on_batch(x), expected(x), rtol=1e-5, atol=1e-6)
    empty = model.predict_on_batch(np.zeros((0, 4, 1), np.float32))
    assert empty.shape == (0, 3) and empty.dtype == np.float32


def test_windows_of_another_float_type_are_taken(saved):
    model = LiteRtModel(saved())
    x = windows(4).astype(np.float64)
    np.testing.assert_allclose(model.predict_on_batch(x), expected(x), rtol=1e-5, atol=1e-6)


def test_predictions_are_the_models_own_not_a_view_the_next_call_overwrites(saved):
    model = LiteRtModel(saved())
    x1, x2 = windows(2, seed=1), windows(2, seed=2)
    first = model.predict_on_batch(x1)
    model.predict_on_batch(x2)
    np.testing.assert_allclose(first, expected(x1), rtol=1e-5, atol=1e-6)


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DataError) as excinfo:
        LiteRtModel(tmp_path / "nothing.tflite")
    assert str(excinfo.value) == f"{tmp_path / 'nothing.tflite'}: model not found"


def test_a_folder_is_not_a_loadable_model(tmp_path):
    folder = tmp_path / "m.tflite"
    folder.mkdir()
    with pytest.raises(DataError) as excinfo:
        LiteRtModel(folder)
    assert str(excinfo.value) == f"{folder}: not a loadable LiteRT model (cannot be read: Is a directory)"


@pytest.mark.parametrize("content", [b"not a flatbuffer at all " * 8, b""])
def test_garbage_is_one_line_saying_why_it_does_not_load(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(DataError) as excinfo:
        LiteRtModel(path)
    text = str(excinfo.value)
    assert text.startswith(f"{path}: not a loadable LiteRT model (") and text.endswith(")")
    assert "\n" not in text and len(text) <= len(f"{path}: not a loadable LiteRT model ()") + 200


def test_a_model_the_interpreter_cannot_prepare_is_one_line_with_its_reason_cut_short(tmp_path):
    short, long = tmp_path / "short.tflite", tmp_path / "long.tflite"
    short.write_bytes(tiny_tflite(custom_op="instrclf_op"))
    long.write_bytes(tiny_tflite(custom_op="instrclf_" * 40))  # the interpreter's message runs to 800 characters
    with pytest.raises(DataError) as excinfo:
        LiteRtModel(short)
    text = str(excinfo.value)
    assert text.startswith(f"{short}: not a loadable LiteRT model (Encountered unresolved custom op: instrclf_op. See ")
    assert "\n" not in text and "  " not in text and text.endswith(" failed to prepare.)")
    with pytest.raises(DataError) as excinfo:
        LiteRtModel(long)
    prefix = f"{long}: not a loadable LiteRT model ("
    reason = str(excinfo.value).removeprefix(prefix).removesuffix(")")
    assert str(excinfo.value) == prefix + reason + ")"
    assert len(reason) == 200 and reason.startswith("Encountered unresolved custom op: instrclf_instrclf_")
