"""``instrclf classify`` with a LiteRT model: the same lines as Keras, no TensorFlow, and which file it runs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import CLASS_F0, TINY_PARAMS, make_clean_dir, tiny_card, tiny_settings, tone

from instrclf import cli, export, models, settings
from instrclf.card import card_path, export_dir, export_paths
from instrclf.errors import DataError
from instrclf.io import sha256_of
from instrclf.litert import SOURCE_METADATA, LiteRtModel, read_metadata

ROOT = Path(__file__).resolve().parents[1]
LABELS = sorted(CLASS_F0)
CLEAN, FEATURES = tiny_settings()
SUMMARY = "classify: 6 file(s): 3 classified, 1 silent, 2 failed"

#: Runs ``instrclf classify``; at exit, says on stderr which of TensorFlow, Keras and kapre it imported.
CLASSIFY = (
    "import atexit, sys; "
    "atexit.register(lambda: print('imported:', [m for m in ('tensorflow', 'keras', 'kapre') if m in sys.modules], "
    "file=sys.stderr)); "
    "from instrclf.cli import main; main(['classify', *sys.argv[1:]])"
)


def save_model(path, *, seed):
    """An untrained tiny baseline (its own random weights), saved with its card."""
    import keras

    keras.utils.set_random_seed(seed)
    model = models.build("baseline", config=settings.model_config(TINY_PARAMS, "baseline"), clean=CLEAN,
                         features=FEATURES, n_classes=len(LABELS))
    models.save(model, path, card=tiny_card("baseline", labels=LABELS, test_folds=[0]))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """``models/baseline.keras`` and its LiteRT export made by the export code, as ``dvc repro`` leaves them."""
    root = tmp_path_factory.mktemp("litert")
    keras_path = save_model(root / "models" / "baseline.keras", seed=5)
    make_clean_dir(root / "clean", notes_per_fold=1, windows_per_note=1)
    export.run(keras_path, clean_dir=root / "clean", out_dir=export_dir(keras_path), formats=("tflite",))
    return root


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Tones of every class at several rates and lengths, a silent file, an unreadable one, a missing one."""
    root = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    for i, (label, f0) in enumerate(CLASS_F0.items()):
        sf.write(root / f"{label}.wav", tone(f0, sample_rate=44100 // (i + 1), seconds=0.4 + 0.5 * i, rng=rng), 44100 // (i + 1))
    sf.write(root / "quiet.wav", np.zeros(4000, np.float32), 8000)
    (root / "broken.flac").write_text("not audio\n" * 20)
    return [*sorted(root.glob("*.wav")), root / "broken.flac", root / "missing.wav"]


def run(*args):
    proc = subprocess.run([sys.executable, "-c", CLASSIFY, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    *lines, imported = proc.stderr.splitlines()
    return proc.returncode, proc.stdout, lines, imported


def _by_label(row):
    return {entry["label"]: entry["probability"] for entry in row["top"]}


@pytest.mark.parametrize("how", ["beside the .keras", "--runtime litert", "the .tflite itself"])
def test_litert_gives_the_keras_lines_without_importing_tensorflow(project, recordings, capfd, how):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--runtime", "keras", "--json", "--top-k", str(len(LABELS)),
                  "--model", str(project / "models" / "baseline.keras"), *map(str, recordings)])
    expected_out, expected_err = capfd.readouterr()
    model = {"beside the .keras": ["--model", project / "models" / "baseline.keras"],
             "--runtime litert": ["--runtime", "litert", "--model", project / "models" / "baseline.keras"],
             "the .tflite itself": ["--model", project / "models" / "export" / "baseline" / "baseline.tflite"]}[how]
    status, out, err, imported = run(*model, "--json", "--top-k", len(LABELS), *recordings)
    assert imported == "imported: []"
    assert status == exit_info.value.code == 1  # the broken and the missing file
    assert err == [SUMMARY] and SUMMARY in expected_err.splitlines()  # no note, no LiteRT notice
    keras_rows, rows = map(lambda text: [json.loads(line) for line in text.splitlines()], (expected_out, out))
    assert [(r["file"], r["status"], r["windows"], r["error"]) for r in rows] == \
        [(r["file"], r["status"], r["windows"], r["error"]) for r in keras_rows]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "silent", "error", "error"]
    for row, keras_row in zip(rows, keras_rows, strict=True):
        probs, keras_probs = _by_label(row), _by_label(keras_row)
        assert probs.keys() == keras_probs.keys()
        assert max((abs(probs[k] - keras_probs[k]) for k in probs), default=0.0) <= 1e-4


def test_text_lines_name_the_same_files_and_failures(project, recordings):
    status, out, err, imported = run("--model", project / "models" / "baseline.keras", *recordings)
    assert imported == "imported: []" and status == 1
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in recordings]
    assert lines[-1] == f"{recordings[-1]}: error: no such file or directory"
    assert lines[-2].startswith(f"{recordings[-2]}: error: not readable as audio")
    assert err == [SUMMARY]


@pytest.fixture
def bad_models(project, tmp_path):
    """Copies of the export, each broken one way: ``{name: (model path, what the error line must say)}``."""
    good = export_paths(export_dir(project / "models" / "baseline.keras"), "baseline")["tflite"]
    found = {}

    def add(name, content, card_text, reason, named=None):
        path = tmp_path / f"{name}.tflite"
        if content is not None:
            path.write_bytes(content)
        if card_text is not None:
            card_path(path).write_text(card_text)
        found[name] = (path, reason, named or path)

    card_text = card_path(good).read_text()
    flat = good.read_bytes()
    add("random", np.random.default_rng(0).bytes(4096), card_text, "not a loadable LiteRT model")
    add("truncated", flat[: len(flat) // 2], card_text, "not a loadable LiteRT model")
    add("absent", None, card_text, "model not found")
    add("nocard", flat, None, "model card not found", named=tmp_path / "nocard.json")
    other = json.loads(card_text) | {"labels": ["Ob", "Tbn", "Vn"]}
    add("othercard", flat, json.dumps(other), "it belongs to another model", named=tmp_path / "othercard.json")
    return found


@pytest.mark.parametrize("name", ["random", "truncated", "absent", "nocard", "othercard"])
def test_a_bad_litert_model_is_one_line_and_exit_1(bad_models, recordings, capsys, name):
    path, reason, named = bad_models[name]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--model", str(path), str(recordings[0])])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: {named}: ") and reason in line


def test_a_litert_model_is_refused_with_runtime_keras(project, capsys):
    path = export_paths(export_dir(project / "models" / "baseline.keras"), "baseline")["tflite"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--runtime", "keras", "--model", str(path), "x.wav"])
    assert exit_info.value.code == 1 and capsys.readouterr().err.startswith(f"error: {path}: a LiteRT model runs with")


def _copy(project, tmp_path):
    shutil.copytree(project / "models", tmp_path / "models")
    return tmp_path / "models" / "baseline.keras"


def test_the_export_records_the_keras_files_digest(project):
    keras_path = project / "models" / "baseline.keras"
    flat = export_paths(export_dir(keras_path), "baseline")["tflite"].read_bytes()
    assert read_metadata(flat, SOURCE_METADATA).decode() == sha256_of(keras_path)
    with pytest.raises(DataError, match="no metadata 'nothing'"):
        read_metadata(flat, "nothing")


def test_the_export_beside_runs_only_for_the_keras_it_was_made_from(project, tmp_path, capsys):
    keras_path = _copy(project, tmp_path)
    exported = export_paths(export_dir(keras_path), "baseline")["tflite"]
    model, card, used = cli.open_model(keras_path)
    assert isinstance(model, LiteRtModel) and used == exported and card == models.load(keras_path)[1]
    assert cli.open_model(keras_path, runtime="keras")[2] == keras_path

    save_model(keras_path, seed=6)  # retrained: other weights, the same card
    model, _, used = cli.open_model(keras_path)
    assert not isinstance(model, LiteRtModel) and used == keras_path
    assert capsys.readouterr().err == (f"note: {exported}: exported from another {keras_path} (its SHA-256 differs: "
                                       "rerun dvc repro export@baseline); classifying with Keras instead\n")
    with pytest.raises(DataError, match=f"^{exported}: exported from another {keras_path}"):
        cli.open_model(keras_path, runtime="litert")


def test_an_edited_card_or_no_export_runs_keras(project, tmp_path, capsys):
    keras_path = _copy(project, tmp_path)
    card = json.loads(card_path(keras_path).read_text())
    card_path(keras_path).write_text(json.dumps(card | {"seed": card["seed"] + 1}))  # the .keras is the same
    assert cli.open_model(keras_path)[2] == keras_path
    assert "it belongs to another model" in capsys.readouterr().err
    shutil.rmtree(export_dir(keras_path))
    assert cli.open_model(keras_path)[2] == keras_path
    assert capsys.readouterr().err == ""  # no export at all: nothing to say
    with pytest.raises(DataError, match="no LiteRT export of .*dvc repro export@baseline"):
        cli.open_model(keras_path, runtime="litert")


def test_a_mixed_precision_models_export_runs_only_when_asked(project, tmp_path, monkeypatch):
    """Its export computes in float32, the trained model in bfloat16: beyond 1e-4, so auto runs Keras."""
    keras_path = _copy(project, tmp_path)
    real = cli.open_export

    def mixed(path, *, keras_path):
        model, card = real(path, keras_path=keras_path)
        return model, card.model_copy(update={"config": card.config | {"precision": "mixed_bfloat16"}})

    monkeypatch.setattr(cli, "open_export", mixed)
    assert cli.open_model(keras_path)[2] == keras_path
    assert isinstance(cli.open_model(keras_path, runtime="litert")[0], LiteRtModel)


def test_litert_calls_are_not_padded_and_default_to_its_own_batch(project, tmp_path):
    model = LiteRtModel(export_paths(export_dir(project / "models" / "baseline.keras"), "baseline")["tflite"])
    assert model.batch is None and cli.default_batch(model) == cli.LITERT_BATCH
    sizes = []
    model.predict_on_batch = lambda x: sizes.append(len(x)) or np.full((len(x), len(LABELS)), 1 / len(LABELS))
    card = tiny_card("baseline", labels=LABELS, test_folds=[0])
    y = tone(CLASS_F0["Fl"], sample_rate=CLEAN.sample_rate, seconds=5 * CLEAN.delta_time, rng=np.random.default_rng(1))
    sf.write(tmp_path / "five.wav", y, CLEAN.sample_rate)  # five windows
    [result] = cli.classify_files(model, card, [(str(tmp_path / "five.wav"), None)], batch_windows=4)
    assert result.windows == 5 and sizes == [4, 1]  # Keras's calls would be [4, 4]: the last one padded


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_a_float16_models_export_does_not_answer_for_it_under_auto(project, tmp_path, monkeypatch):
    """mixed_float16 as mixed_bfloat16: the float32 export differs from the trained arithmetic, so auto runs Keras."""
    keras_path = _copy(project, tmp_path)
    real = cli.open_export

    def mixed(path, *, keras_path):
        model, card = real(path, keras_path=keras_path)
        return model, card.model_copy(update={"config": card.config | {"precision": "mixed_float16"}})

    monkeypatch.setattr(cli, "open_export", mixed)
    assert cli.open_model(keras_path)[2] == keras_path


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_a_missing_keras_beside_its_export_is_one_error_line(project, recordings, tmp_path, capsys):
    """models/<m>.keras deleted, its card and export still there: the error says the model is missing, and nothing else."""
    keras_path = _copy(project, tmp_path)
    keras_path.unlink()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["classify", "--model", str(keras_path), str(recordings[0])])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: {keras_path}: model not found")
