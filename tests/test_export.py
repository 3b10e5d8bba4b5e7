"""Exports of a user model (instrclf.export, stages/export.py): LiteRT, SavedModel, ONNX, and their parity."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic import TINY_PARAMS, make_clean_dir, tiny_card, tiny_settings, write_params

from instrclf import data, export, layout, models, settings
from instrclf.card import export_paths, read_card
from instrclf.export import ExportError
from instrclf.io import sha256_of
from instrclf.litert import CARD_METADATA, SOURCE_METADATA, LiteRtModel, read_metadata

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Fl", "Tbn", "Vn"]
CLEAN, FEATURES = tiny_settings()
#: conv1d in float32: a real stack (Conv1D, pooling, dense head) that converts to builtins.
PARAMS = TINY_PARAMS


def save_model(path, name="conv1d", *, params=PARAMS, seed=3, shift_average=0):
    """An untrained tiny model (its own random weights) of ``name`` saved with its card (``shift_average``:
    built as predict.shift_average builds the user model)."""
    import keras

    keras.utils.set_random_seed(seed)
    clean, features = tiny_settings(params)
    model = models.build(name, config=settings.model_config(params, name), clean=clean, features=features,
                         n_classes=len(LABELS))
    if shift_average:
        model = models.assemble(model.get_layer("frontend"), models.back_ends(model), name=name, shift_average=shift_average)
    models.save(model, path, card=tiny_card(name, labels=LABELS, test_folds=[0], params=params))
    return path


def run_stage(model_path, clean_dir, out_dir, results):
    """stages/export.py in a fresh process, as dvc repro runs it: ``(stdout, stderr)``; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "stages/export.py", "--model", model_path, "--clean", clean_dir, "--out", out_dir,
         "--results", results], cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The stage run on a tiny conv1d averaged over shifted views (the default user model's shape) and
    60 clean windows: ``(root, model path, out folder, results)``."""
    root = tmp_path_factory.mktemp("export")
    make_clean_dir(root / "clean", notes_per_fold=1)
    model_path = save_model(root / "conv1d.keras", shift_average=1)
    out, _ = run_stage(model_path, root / "clean", root / "export" / "conv1d", root / "results" / "conv1d.json")
    assert out.startswith("export@conv1d: ") and "tflite_max_abs_diff=" in out
    return root, model_path, root / "export" / "conv1d", json.loads((root / "results" / "conv1d.json").read_text())


@pytest.fixture(scope="module")
def windows(exported):
    root = exported[0]
    return data.load_windows(root / "clean", layout.read_index(root / "clean"), n_samples=CLEAN.window_length)


@pytest.fixture(scope="module")
def keras_probs(exported, windows):
    model, _ = models.load(exported[1])
    return model.predict_on_batch(windows)


def test_the_export_folder_holds_every_format_and_its_card(exported):
    _, _, out, results = exported
    card = (out / "conv1d.json").read_text()
    assert read_card(out / "conv1d.json").model == "conv1d"
    assert read_metadata((out / "conv1d.tflite").read_bytes(), CARD_METADATA).decode() == card
    assert read_metadata((out / "conv1d.tflite").read_bytes(), SOURCE_METADATA).decode() == sha256_of(exported[1])
    assert (out / "conv1d.savedmodel" / "assets" / "conv1d.json").read_text() == card
    assert results["tflite_kept"] == results["savedmodel_kept"] == 1
    assert (out / "conv1d.int8.tflite").is_file() == bool(results["tflite_int8_kept"])
    assert (out / "conv1d.onnx").is_file() == bool(results["onnx_kept"])
    assert results["windows"] == 60 and results["files"] == 30


@pytest.mark.parametrize("fmt", ["tflite", "savedmodel"])
def test_float_exports_equal_keras_on_every_window(exported, windows, keras_probs, fmt):
    """Run independently of the stage's figures: within 1e-4, the same top-1 everywhere."""
    probs = export.predictor(fmt, export_paths(exported[2], "conv1d")[fmt])(windows)
    assert np.abs(probs - keras_probs).max() <= 1e-4
    assert (probs.argmax(axis=1) == keras_probs.argmax(axis=1)).all()
    assert exported[3][f"{fmt}_max_abs_diff"] == pytest.approx(np.abs(probs - keras_probs).max(), abs=1e-6)


def test_litert_uses_builtin_ops_only_and_takes_any_batch(exported, windows, keras_probs):
    from tensorflow.lite.tools import flatbuffer_utils

    flat = flatbuffer_utils.read_model(str(exported[2] / "conv1d.tflite"))
    custom = [op.customCode for op in flat.operatorCodes if op.customCode]  # Flex ops are custom ops
    assert custom == []
    model = LiteRtModel(exported[2] / "conv1d.tflite")
    assert model.batch is None and model.input_shape == (None, CLEAN.window_length, 1)
    for n in (1, 7):
        assert np.abs(model.predict_on_batch(windows[:n]) - keras_probs[:n]).max() <= 1e-4


def test_litert_runs_without_tensorflow(exported, windows):
    np.save(exported[0] / "x.npy", windows[:5])
    code = (f"import sys, numpy as np; from instrclf.litert import LiteRtModel; "
            f"p = LiteRtModel({str(exported[2] / 'conv1d.tflite')!r}).predict_on_batch(np.load({str(exported[0] / 'x.npy')!r})); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; print(p.shape)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["(5,", "3)"], proc.stderr


def test_int8_figures_decide_whether_it_is_kept(exported):
    results = exported[3]
    figures = {key: results[f"tflite_int8_{key}"] for key in ("max_abs_diff", "top1_agreement", "top1_flips", "file_accuracy")}
    kept = export.meets_targets("tflite_int8", figures, keras_file_accuracy=results["keras_file_accuracy"])
    assert results["tflite_int8_kept"] == int(kept)
    assert results["tflite_int8_bytes"] < results["tflite_bytes"] / 2


def test_a_top1_change_is_forgiven_only_on_a_tie_at_float_precision(tmp_path):
    """Keras's two best within 2e-4: any rounding may pick either; a clear winner must never change."""
    index = layout.read_index(make_clean_dir(tmp_path / "clean", notes_per_fold=1))[:3]
    keras_probs = np.array([[0.50004, 0.49996, 0.0], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    tie_broken = keras_probs.copy()
    tie_broken[0] = [0.49996, 0.50004, 0.0]
    figures = export.parity(keras_probs, tie_broken, index, labels=LABELS)
    assert (figures["top1_ties"], figures["top1_flips"]) == (1, 0) and figures["max_abs_diff"] == pytest.approx(8e-5)
    assert export.meets_targets("onnx", figures, keras_file_accuracy=0.0)
    flipped = keras_probs.copy()
    flipped[1] = [0.2, 0.7, 0.1]  # a clear winner changed
    figures = export.parity(keras_probs, flipped, index, labels=LABELS)
    assert (figures["top1_ties"], figures["top1_flips"]) == (0, 1) and not export.meets_targets("onnx", figures, keras_file_accuracy=0.0)


def test_onnx_bytes_do_not_depend_on_the_converters_names_or_order(exported):
    """tf2onnx may name and order nodes, tensors and constants differently per run: the canonical file is one."""
    import onnx

    path = export_paths(exported[2], "conv1d")["onnx"]
    if not path.is_file():
        pytest.skip("the tiny conv1d's ONNX export was not kept")
    original = onnx.load(str(path))
    scrambled = onnx.load(str(path))
    graph, outputs = scrambled.graph, {o.name for o in scrambled.graph.output}
    renamed = {out: f"x{len(graph.node) - i}_{k}" for i, node in enumerate(graph.node) for k, out in enumerate(node.output)
               if out not in outputs}
    renamed |= {init.name: f"c{n}" for n, init in enumerate(reversed(graph.initializer))}
    for node in graph.node:
        node.name = f"node{hash(node.name) % 1000}"
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for init in graph.initializer:
        init.name = renamed[init.name]
    inits = list(reversed(graph.initializer))
    del graph.initializer[:]
    graph.initializer.extend(inits)
    assert scrambled.SerializeToString() != original.SerializeToString()
    same = export.canonical_onnx(scrambled).SerializeToString(deterministic=True)
    assert same == export.canonical_onnx(original).SerializeToString(deterministic=True) == path.read_bytes()


def test_exporting_twice_gives_identical_bytes(exported, tmp_path):
    """Each run of the stage is a fresh process (TensorFlow numbers traced functions per process)."""
    root, model_path, out, _ = exported
    run_stage(model_path, root / "clean", tmp_path / "again", tmp_path / "again.json")
    first = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert first == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file())
    assert [p for p in first if (out / p).read_bytes() != (tmp_path / "again" / p).read_bytes()] == []


def test_a_format_that_cannot_convert_is_one_line_naming_model_format_operator(tmp_path):
    """conv2d in mixed_bfloat16 (the tiny params) has bfloat16 ops, which TFLite builtins lack."""
    assert PARAMS["models"]["conv2d"]["precision"] == "mixed_bfloat16"
    model, card = models.load(save_model(tmp_path / "conv2d.keras", "conv2d"))
    with pytest.raises(ExportError) as error:
        export.to_tflite(model, name="conv2d", card_json=card.model_dump_json())
    [line] = str(error.value).splitlines()
    assert line.startswith("conv2d: tflite: operator tf.")


def test_a_mixed_precision_model_is_exported_from_its_float32_twin(tmp_path):
    """The tiny conv2d trains in mixed_bfloat16: its exports are made in float32 and equal that twin; its own figures are reported."""
    model_path = save_model(tmp_path / "conv2d.keras", "conv2d")
    model, _ = models.load(model_path)
    twin = export.float32_twin(model)
    assert twin is not model and {layer.dtype_policy.name for layer in export._all_layers(twin)} == {"float32"}
    assert export.float32_twin(twin) is twin
    make_clean_dir(tmp_path / "clean", notes_per_fold=1)
    x = data.load_windows(tmp_path / "clean", layout.read_index(tmp_path / "clean"), n_samples=CLEAN.window_length)
    mixed, exact = np.asarray(model.predict_on_batch(x)), np.asarray(twin.predict_on_batch(x))
    assert 0 < np.abs(mixed - exact).max() < 0.05  # the same function, rounded differently
    out = export.run(model_path, clean_dir=tmp_path / "clean", out_dir=tmp_path / "out", formats=("tflite",))["results"]
    assert out["tflite_max_abs_diff"] <= export.FLOAT_TOLERANCE and out["tflite_kept"] == 1
    assert out["keras_mixed_max_abs_diff"] == pytest.approx(np.abs(mixed - exact).max(), rel=1e-6)


def test_a_missing_optional_converter_leaves_that_format_out_in_one_line(exported, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    root, model_path, _, _ = exported
    out = export.run(model_path, clean_dir=root / "clean", out_dir=tmp_path / "out", formats=("tflite", "onnx"))
    assert out["results"]["onnx_kept"] == 0 and "onnx_max_abs_diff" not in out["results"]
    [line] = out["skipped"]
    assert line.startswith("conv1d: onnx: tf2onnx is not installed") and "\n" not in line
    assert not (tmp_path / "out" / "conv1d.onnx").exists()


@pytest.mark.parametrize("n_fft, win_length, hop_length", [(256, 200, 80), (128, 128, 50)])
def test_the_real_front_end_equals_kapres(windows, n_fft, win_length, hop_length):
    """The Conv1D DFT + kapre's filterbank and dB: the spectrogram kapre's complex STFT gives, to 1e-3 dB."""
    features = settings.FeatureSettings.from_params({"n_mels": 32, "n_fft": n_fft, "win_length": win_length,
                                                     "hop_length": hop_length})
    model = models.build("baseline", config=settings.model_config(PARAMS, "baseline"), clean=CLEAN,
                         features=features, n_classes=3)
    real = export.real_model(model, name="baseline").get_layer("real_melspectrogram")
    kapre = model.get_layer("frontend")(windows[:8]).numpy()
    assert real(windows[:8]).numpy().shape == kapre.shape
    assert np.abs(real(windows[:8]).numpy() - kapre).max() < 1e-3


def test_file_accuracy_takes_the_mean_over_a_files_windows():
    import pandas as pd

    index = pd.DataFrame({"Path": ["a", "a", "b"], "library": "lib", "fold": 0, "label": ["Fl", "Fl", "Vn"]})
    probs = np.array([[0.9, 0.1, 0.0], [0.0, 0.6, 0.4], [0.2, 0.0, 0.8]])  # a: mean picks Fl although window 2 says Tbn
    assert export.file_accuracy(probs, index, labels=LABELS) == 1.0
    assert export.file_accuracy(probs[:, ::-1], index, labels=LABELS) == 0.0


def test_every_trained_model_and_export_is_a_registry_artifact():
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    artifacts = document["artifacts"]
    for name in yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["models"]:
        paths = export_paths(f"models/export/{name}", name)
        expected = {name: f"models/{name}.keras", f"{name}-tflite": paths["tflite"], f"{name}-tflite-int8": paths["tflite_int8"],
                    f"{name}-savedmodel": paths["savedmodel"], f"{name}-onnx": paths["onnx"]}
        for artifact, path in expected.items():
            assert artifacts[artifact]["path"] == str(path) and artifacts[artifact]["type"] == "model", artifact
            assert artifacts[artifact]["desc"] and name in artifacts[artifact]["labels"]


def test_an_int8_model_more_than_half_a_point_worse_than_keras_is_not_kept():
    figures = {"max_abs_diff": 0.05, "top1_agreement": 1.0, "file_accuracy": 0.90}
    assert not export.meets_targets("tflite_int8", figures, keras_file_accuracy=0.92)  # 2 points worse
    assert export.meets_targets("tflite_int8", figures, keras_file_accuracy=0.903)  # 0.3 points: kept


def test_a_fixed_batch_litert_model_gives_one_row_per_window():
    """The LSTM's export runs at a fixed batch: slices of it, the last padded, and only the real windows' rows back."""
    model = LiteRtModel.__new__(LiteRtModel)  # the batching alone: no interpreter needed
    model.batch, model.output_shape = 4, (None, 2)
    calls = []

    def call(x):
        calls.append(x.shape)
        return np.stack([x[:, 0, 0], -x[:, 0, 0]], axis=1)

    model._call = call
    x = np.arange(1, 8, dtype=np.float32).reshape(7, 1, 1)
    out = model.predict_on_batch(x)
    assert calls == [(4, 1, 1), (4, 1, 1)]
    np.testing.assert_array_equal(out, np.stack([np.arange(1, 8), -np.arange(1, 8)], axis=1))
    assert model.predict_on_batch(x[:0]).shape == (0, 2)


def test_an_export_that_is_not_kept_leaves_neither_its_file_nor_its_card(exported, tmp_path, monkeypatch):
    """int8 off its target: the folder keeps only the formats kept, each with its card (no card of a missing model)."""
    root, model_path, out, _ = exported
    flat = (out / "conv1d.tflite").read_bytes()
    monkeypatch.setattr(export, "to_tflite", lambda model, **kwargs: flat)  # no conversion: the float model stands in for int8
    monkeypatch.setitem(export.INT8_TARGETS, "top1_agreement", 1.01)  # a target no model meets
    result = export.run(model_path, clean_dir=root / "clean", out_dir=tmp_path / "out", formats=("tflite", "tflite_int8"))
    assert result["results"]["tflite_kept"] == 1 and result["results"]["tflite_int8_kept"] == 0
    [line] = result["skipped"]
    assert line.startswith("conv1d: tflite_int8: not kept")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["conv1d.json", "conv1d.tflite"]


def test_an_int8_model_exactly_at_its_agreement_target_is_kept():
    """The target reads "at least 99.5 %": 199 of 200 windows agreeing is enough, 198 is not."""
    figures = {"max_abs_diff": 0.05, "top1_agreement": 199 / 200, "file_accuracy": 0.9}
    assert export.meets_targets("tflite_int8", figures, keras_file_accuracy=0.9)
    assert not export.meets_targets("tflite_int8", figures | {"top1_agreement": 198 / 200}, keras_file_accuracy=0.9)


def test_litert_takes_windows_of_any_float_type(exported, windows):
    """Windows in float64 (NumPy's default) give the float32 windows' answer, not an interpreter error."""
    model = LiteRtModel(exported[2] / "conv1d.tflite")
    np.testing.assert_array_equal(model.predict_on_batch(windows[:3].astype(np.float64)), model.predict_on_batch(windows[:3]))


def test_the_stage_warns_once_per_format_it_left_out(tmp_path, monkeypatch, capsys):
    """An optional format that is not made is a warning on stderr, one line each; the summary stays on stdout."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stage_export", ROOT / "stages" / "export.py")
    stage_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage_module)
    skipped = ["conv1d: onnx: tf2onnx is not installed (No module named 'tf2onnx')",
               "conv1d: tflite_int8: not kept: max |dp| 0.02, top-1 agreement 0.9900 (2 window(s) not ties)"]
    monkeypatch.setattr(export, "run", lambda *args, **kwargs: {"results": {"tflite_kept": 1, "onnx_kept": 0}, "skipped": skipped})
    stage_module.main(["--model", str(tmp_path / "conv1d.keras"), "--clean", str(tmp_path / "clean"),
                       "--out", str(tmp_path / "out"), "--results", str(tmp_path / "results.json")])
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"warning: {line}" for line in skipped]
    assert captured.out == "export@conv1d: tflite_kept=1, onnx_kept=0\n"
    assert json.loads((tmp_path / "results.json").read_text()) == {"tflite_kept": 1, "onnx_kept": 0}


def test_the_stage_makes_the_formats_export_formats_names(tmp_path, monkeypatch):
    """``export.formats`` reaches the exporter in its order; a format not named is not made."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stage_export", ROOT / "stages" / "export.py")
    stage_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage_module)
    asked = []
    monkeypatch.setattr(export, "run", lambda *args, formats, **kwargs: asked.append(formats) or {"results": {}, "skipped": []})
    params = {"export": {"formats": ["onnx", "tflite"]}}
    stage_module.main(["--params", str(write_params(tmp_path / "params.yaml", params)), "--model", str(tmp_path / "conv1d.keras"),
                       "--clean", str(tmp_path / "clean"), "--out", str(tmp_path / "out"), "--results", str(tmp_path / "r.json")])
    assert asked == [("onnx", "tflite")]


def test_only_the_formats_asked_for_are_written_and_reported(exported, tmp_path):
    root, model_path, _, _ = exported
    out = export.run(model_path, clean_dir=root / "clean", out_dir=tmp_path / "conv1d", formats=("tflite",))
    assert sorted(p.name for p in (tmp_path / "conv1d").iterdir()) == ["conv1d.json", "conv1d.tflite"]
    assert not [key for key in out["results"] if key.startswith(("tflite_int8", "savedmodel", "onnx"))]
    assert out["results"]["tflite_kept"] == 1 and out["skipped"] == []


def test_the_exporter_names_each_format_as_it_makes_it_and_counts_every_window(exported, tmp_path, monkeypatch, capsys):
    """A conversion can take minutes: one stderr line per format, in ``formats``'s order, then one bar
    over every window naming the predictors it compares (forced on here: off the terminal it hides)."""
    import io

    import tqdm

    bars = []

    class Shown(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs | {"disable": False, "file": io.StringIO()})
            bars.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Shown)
    root, model_path, _, _ = exported
    out = export.run(model_path, clean_dir=root / "clean", out_dir=tmp_path / "conv1d", formats=("onnx", "tflite"))
    made = [line for line in capsys.readouterr().err.splitlines() if " making " in line]
    assert made == ["conv1d: making onnx", "conv1d: making tflite"]
    windows = out["results"]["windows"]
    assert windows == len(layout.read_index(root / "clean"))
    assert [(bar.desc, bar.total, bar.n) for bar in bars] == [("conv1d: keras, onnx, tflite", windows, windows)]

# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_litert_takes_a_smaller_batch_after_a_larger_one(exported, windows, keras_probs):
    """classify's last call holds fewer windows than the one before it: the input shrinks as it grows."""
    model = LiteRtModel(exported[2] / "conv1d.tflite")
    for n in (7, 2, 5, 1):
        assert np.abs(model.predict_on_batch(windows[:n]) - keras_probs[:n]).max() <= 1e-4


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_savedmodels_bytes_are_those_of_its_files(exported):
    _, _, out, results = exported
    folder = out / "conv1d.savedmodel"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.is_dir() for p in folder.rglob("*"))  # variables/, assets/: folders whose own size is no file's
    assert results["savedmodel_bytes"] == sum(p.stat().st_size for p in files)
    assert results["tflite_bytes"] == (out / "conv1d.tflite").stat().st_size
