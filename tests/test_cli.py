"""Tests of ``instrclf classify``: the real command in a subprocess, and its batching in process."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import CLASS_F0, TINY_PARAMS, interrupt_when, tone

from instrclf import audio, cli, models
from instrclf.card import CARD_FORMAT, ModelCard
from instrclf.errors import DataError
from instrclf.settings import BaselineConfig, CleanSettings, FeatureSettings
from instrclf import settings

ROOT = Path(__file__).resolve().parents[1]
LABELS = sorted(CLASS_F0)
CLEAN = CleanSettings.from_params(TINY_PARAMS["clean"])  # 0.5-s windows at 8 kHz
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def card(**changes):
    values = {
        "format": CARD_FORMAT, "model": "baseline", "labels": LABELS, "target": "instrument", "clean": CLEAN,
        "features": FeatureSettings.from_params(TINY_PARAMS["features"]),
        "config": TINY_PARAMS["models"]["baseline"], "test_folds": [0], "unseen_library": None, "seed": 7,
    }
    return ModelCard(**{**values, **changes})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained tiny model (the CLI's plumbing needs no training) and three broken ones."""
    import keras

    root = tmp_path_factory.mktemp("models")
    the_card = card()
    model = models.build(
        "baseline", config=BaselineConfig.from_params(TINY_PARAMS["models"]["baseline"]), clean=CLEAN,
        features=the_card.features, n_classes=len(LABELS),
    )
    models.save(model, root / "tiny.keras", card=the_card)
    (root / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    shutil.copy(root / "tiny.json", root / "random.json")
    inputs = keras.Input((CLEAN.window_length, 1))
    x = keras.layers.Lambda(lambda t: 2 * t)(inputs)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(keras.layers.Flatten()(x))
    keras.Model(inputs, outputs).save(root / "lambda.keras")
    shutil.copy(root / "tiny.json", root / "lambda.json")
    shutil.copy(root / "tiny.keras", root / "nocard.keras")
    return root


def write_tone(path, *, sample_rate, seconds, channels=1, seed=0, subtype=None, **kwargs):
    y = tone(CLASS_F0["Fl"], sample_rate=sample_rate, seconds=seconds, rng=np.random.default_rng(seed))
    y = np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1) if channels > 1 else y
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sample_rate, subtype=subtype, **kwargs)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good files at 44.1, 96 and 192 kHz, a folder tree, and every kind of bad file."""
    root = tmp_path_factory.mktemp("inputs")
    write_tone(root / "note.wav", sample_rate=44100, seconds=1.7, channels=2, subtype="PCM_24")
    write_tone(root / "high.wav", sample_rate=192000, seconds=1.2)
    folder = root / "folder"
    write_tone(folder / "b.flac", sample_rate=22050, seconds=0.7, seed=1)
    write_tone(folder / "sub" / "a.WAV", sample_rate=96000, seconds=1.1, channels=2, seed=2)
    write_tone(folder / "sub" / "c.ogg", sample_rate=16000, seconds=0.9, seed=3, format="OGG", subtype="VORBIS")
    sf.write(folder / "quiet.wav", np.zeros(8000, np.float32), 8000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio, and not picked up: wrong suffix")
    (folder / "text.flac").write_text("not audio at all\n" * 50)
    whole = (root / "note.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (root / "nothing").mkdir()
    return root


def run_cli(*args, stderr=subprocess.PIPE, console=False):
    # the console script installed beside this interpreter, whether or not its folder is on PATH
    command = [str(Path(sys.executable).parent / "instrclf")] if console else [sys.executable, "-m", "instrclf.cli"]
    return subprocess.run(
        [*command, *map(str, args)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=stderr,
        text=True, timeout=180, check=False,
    )


# --- the real command -----------------------------------------------------------------------


def test_mixed_batch_json_reports_every_file_in_order(model_dir, inputs):
    folder = inputs / "folder"
    result = run_cli(
        "classify", "--model", model_dir / "tiny.keras", "--json", "--top-k", "2",
        inputs / "note.wav", folder, inputs / "missing.wav", inputs / "high.wav", inputs / "nothing",
    )
    assert result.returncode == 1, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [
        (inputs / "note.wav", "ok"),
        (folder / "b.flac", "ok"),
        (folder / "empty.wav", "error"),
        (folder / "quiet.wav", "silent"),
        (folder / "sub" / "a.WAV", "ok"),
        (folder / "sub" / "c.ogg", "ok"),
        (folder / "text.flac", "error"),
        (folder / "truncated.wav", "error"),
        (inputs / "missing.wav", "error"),
        (inputs / "high.wav", "ok"),
        (inputs / "nothing", "error"),
    ]
    assert [(r["file"], r["status"]) for r in rows] == [(str(p), s) for p, s in expected]
    for row in rows:
        assert set(row) == {"file", "status", "windows", "top", "error"}
        if row["status"] == "ok":
            probs = [t["probability"] for t in row["top"]]
            assert row["error"] is None and row["windows"] >= 1 and len(probs) == 2
            assert {t["label"] for t in row["top"]} <= set(LABELS)
            assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        else:
            assert row["top"] == [] and row["windows"] == 0
            assert (row["error"] is None) == (row["status"] == "silent")
    by_file = {Path(r["file"]).name: r for r in rows}
    assert by_file["note.wav"]["windows"] == 3  # 1.7 s of tone -> three 0.5-s windows
    assert by_file["high.wav"]["windows"] == 2
    assert by_file["empty.wav"]["error"] == "empty file (0 bytes)"
    assert "not readable as audio" in by_file["text.flac"]["error"]
    assert "truncated WAV" in by_file["truncated.wav"]["error"]
    assert by_file["missing.wav"]["error"] == "no such file or directory"
    assert "no audio files" in by_file["nothing"]["error"]
    # stderr is not a terminal: no progress bar, only the summary.
    assert result.stderr.splitlines() == ["classify: 11 file(s): 5 classified, 1 silent, 5 failed"]


def test_text_output_and_exit_0_when_nothing_failed(model_dir, inputs):
    folder = inputs / "folder"
    good = [inputs / "high.wav", folder / "quiet.wav", folder / "sub", inputs / "note.wav"]
    result = run_cli("classify", "--model", model_dir / "tiny.keras", "--top-k", "5", *good, console=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(p) for p in (inputs / "high.wav", folder / "quiet.wav", folder / "sub" / "a.WAV", folder / "sub" / "c.ogg", inputs / "note.wav")
    ]
    assert lines[1] == f"{folder / 'quiet.wav'}: silent (nothing above the model's threshold of {CLEAN.threshold_db} dBFS)"
    for line in lines[:1] + lines[2:]:
        ranked = line.split(": ", 1)[1].split(", ")
        assert len(ranked) == len(LABELS)  # --top-k larger than the label count shows them all
        assert sorted(r.split()[0] for r in ranked) == LABELS and all(r.endswith("%") for r in ranked)
    assert result.stderr.splitlines() == ["classify: 5 file(s): 4 classified, 1 silent, 0 failed"]


@pytest.mark.parametrize(
    "name, reason",
    [
        ("random.keras", "not a loadable Keras model"),
        ("lambda.keras", "Lambda"),
        ("nocard.keras", "model card not found"),
        ("absent.keras", "model not found"),
    ],
)
def test_a_bad_model_is_one_line_and_exit_1(model_dir, inputs, name, reason):
    result = run_cli("classify", "--model", model_dir / name, inputs / "note.wav")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    named = model_dir / (name.replace(".keras", ".json") if name == "nocard.keras" else name)
    assert line.startswith(f"error: {named}: ") and reason in line


def test_progress_bar_shows_on_a_terminal(model_dir, inputs):
    """On a terminal stderr carries a tqdm bar (off when stderr is a pipe: see the JSON test)."""
    main, child = pty.openpty()
    try:
        result = run_cli("classify", "--model", model_dir / "tiny.keras", inputs / "note.wav", inputs / "high.wav", stderr=child)
    finally:
        os.close(child)
    seen = b""
    while select.select([main], [], [], 0.5)[0]:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert result.returncode == 0
    assert b"classify:" in seen and b"file" in seen and b"\r" in seen  # the bar redraws in place
    assert "%|" not in result.stdout and len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize("args", [["--top-k", "0"], ["--top", "2"], ["--batch-size", "-1"], []])
def test_bad_command_lines_exit_2(args, inputs, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["classify", "--model", "m.keras", *args, *([str(inputs / "note.wav")] if args else [])])
    assert exit_.value.code == 2


def test_main_usage_help_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["frobnicate"])
    assert exit_.value.code == 2 and "classify" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "compare" in capsys.readouterr().out


def test_help_names_the_sample_rates_and_top_k(capsys):
    with pytest.raises(SystemExit):
        cli.main(["classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1 kHz to 384 kHz" in text and "--top-k" in text and "--top " not in text


def test_compare_is_dispatched_to_its_module(monkeypatch):
    module = pytest.importorskip("instrclf.compare")
    seen = []
    monkeypatch.setattr(module, "main", lambda argv: seen.append(argv) or 3)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", "a", "--b"])
    assert exit_.value.code == 3 and seen == [["a", "--b"]]


# --- in process: discovery and batching ------------------------------------------------------


def test_find_audio_expands_folders_sorted_and_recursive(inputs):
    folder = inputs / "folder"
    found = cli.find_audio([str(folder), str(inputs / "none.wav"), str(inputs / "note.wav"), str(inputs / "nothing")])
    assert [Path(p).relative_to(inputs).as_posix() for p, _ in found] == [
        "folder/b.flac", "folder/empty.wav", "folder/quiet.wav", "folder/sub/a.WAV", "folder/sub/c.ogg",
        "folder/text.flac", "folder/truncated.wav", "none.wav", "note.wav", "nothing",
    ]
    errors = {Path(p).name: e for p, e in found if e}
    assert errors == {"none.wav": "no such file or directory", "nothing": errors["nothing"]}
    assert "no audio files" in errors["nothing"]


class CountingModel:
    """A model stand-in that counts its calls and checks the shape it is given."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def predict_on_batch(self, x):
        self.calls.append(x.shape)
        return self.model.predict_on_batch(x)


@pytest.mark.parametrize("batch_windows, block_frames", [(1, 500), (3, 1000), (256, None)])
def test_batched_probabilities_equal_one_predict_per_file(model_dir, inputs, tmp_path, batch_windows, block_frames):
    model, the_card = models.load(model_dir / "tiny.keras")
    long = write_tone(tmp_path / "long.flac", sample_rate=44100, seconds=4.2, channels=2, seed=5)
    paths = [inputs / "note.wav", inputs / "folder" / "empty.wav", long, inputs / "folder" / "quiet.wav", inputs / "high.wav"]
    counting = CountingModel(model)
    results = list(cli.classify_files(
        counting, the_card, [(str(p), None) for p in paths], batch_windows=batch_windows, block_frames=block_frames
    ))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert [r.status for r in results] == ["ok", "error", "ok", "silent", "ok"]
    for path, result in zip(paths, results, strict=True):
        if result.status != "ok":
            continue
        windows = audio.prepare(*audio.load(path), **the_card.clean.model_dump())
        assert result.windows == len(windows)
        np.testing.assert_allclose(result.probs, model.predict(windows[..., None], verbose=0).mean(axis=0), rtol=1e-5, atol=1e-7)
    total = sum(r.windows for r in results)
    assert len(counting.calls) == -(-total // batch_windows)  # every call full but the last
    assert set(counting.calls) == {(batch_windows, CLEAN.window_length, 1)}  # one shape: no retracing


def test_a_file_failing_midway_loses_its_windows_only(model_dir, tmp_path):
    model, the_card = models.load(model_dir / "tiny.keras")
    y = tone(CLASS_F0["Vn"], sample_rate=8000, seconds=3.0, rng=np.random.default_rng(0))
    y[-100] = np.nan  # found only in the last block
    sf.write(tmp_path / "nan.wav", y, 8000, subtype="FLOAT")
    good = write_tone(tmp_path / "good.wav", sample_rate=8000, seconds=1.0)
    results = list(cli.classify_files(
        model, the_card, [(str(tmp_path / "nan.wav"), None), (str(good), None)], batch_windows=4, block_frames=2000
    ))
    assert [r.status for r in results] == ["error", "ok"]
    assert "NaN" in results[0].error and results[0].windows == 0 and results[0].probs is None
    assert results[1].windows == 2


# --- like a Unix tool: a reader that goes away, Ctrl-C (real processes) ------------------------


def test_a_reader_gone_ends_classify_quietly_with_141(model_dir, inputs):
    """``instrclf classify ... | head -1`` once head has gone: no BrokenPipeError traceback, status 141."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "instrclf.cli", "classify", "--model", str(model_dir / "tiny.keras"),
             str(inputs / "note.wav"), str(inputs / "high.wav")],
            cwd=ROOT, env=ENV, stdout=write, stderr=subprocess.PIPE, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_ctrl_c_mid_classify_is_one_line_and_status_130(model_dir, inputs, tmp_path):
    """SIGINT once the first file's line is out and a long file is being classified: 130 and ``interrupted``."""
    long = write_tone(tmp_path / "long.wav", sample_rate=8000, seconds=120.0, subtype="PCM_16")
    proc = subprocess.Popen(
        [sys.executable, "-m", "instrclf.cli", "classify", "--model", str(model_dir / "tiny.keras"), "--batch-size", "1",
         str(inputs / "note.wav"), *[str(long)] * 20],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = []
    out, err = interrupt_when(proc, lambda: first or first.append(proc.stdout.readline()) or True)
    assert first[0].startswith(f"{inputs / 'note.wav'}: "), (first, out, err)
    assert proc.returncode == 130 and err == "interrupted\n", err
    assert len(out.splitlines()) < 20  # it stopped: the 20 long files were not all classified


# --- when an answer cannot be trusted (issue 25, item 6) ---------------------------------------


@pytest.fixture(scope="module")
def other_models(tmp_path_factory, model_dir):
    """Beside tiny.keras (a baseline of fold 0): a conv1d of fold 0 and a baseline of fold 1, each with its card."""
    root = tmp_path_factory.mktemp("others")
    features = card().features
    for name, fold in (("conv1d", 0), ("baseline", 1)):
        the_card = card(model=name, config=TINY_PARAMS["models"][name], test_folds=[fold])
        model = models.build(
            name, config=settings.MODEL_CONFIGS[name].from_params(TINY_PARAMS["models"][name]), clean=CLEAN,
            features=features, n_classes=len(LABELS), fold=fold,
        )
        models.save(model, root / f"{name}{fold}.keras", card=the_card)
    return root


def classify_in_process(capsys, *args):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["classify", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.mark.parametrize("card_of", ["conv1d0", "baseline1"])
def test_a_card_of_another_model_is_refused_in_one_line(model_dir, other_models, inputs, tmp_path, capsys, card_of):
    """A conv1d card (or the card of another fold) beside tiny.keras, a baseline of fold 0: refused, nothing classified."""
    shutil.copy(model_dir / "tiny.keras", tmp_path / "m.keras")
    shutil.copy(other_models / f"{card_of}.json", tmp_path / "m.json")
    code, out, err = classify_in_process(capsys, "--model", tmp_path / "m.keras", inputs / "note.wav")
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: {tmp_path / 'm.json'}: the card of a {card_of[:-1]} model") and "belongs to another model" in line
    # the card's own model is accepted: the check compares, it does not refuse conv1d or fold 1
    shutil.copy(other_models / f"{card_of}.keras", tmp_path / "m.keras")
    code, out, err = classify_in_process(capsys, "--model", tmp_path / "m.keras", inputs / "note.wav")
    assert code == 0 and out.startswith(f"{inputs / 'note.wav'}: "), err


def test_corrupt_keras_files_say_corrupt_not_file_not_found(model_dir, tmp_path):
    whole = (model_dir / "tiny.keras").read_bytes()
    for name, content in (("random", np.random.default_rng(1).bytes(4096)), ("truncated", whole[: len(whole) // 2])):
        (tmp_path / f"{name}.keras").write_bytes(content)
        shutil.copy(model_dir / "tiny.json", tmp_path / f"{name}.json")
        with pytest.raises(DataError) as err:
            models.load(tmp_path / f"{name}.keras")
        message = str(err.value)
        assert message.startswith(f"{tmp_path / name}.keras: ") and "corrupt" in message
        assert "not found" not in message.lower() and "\n" not in message


def test_too_little_sound_and_a_low_sample_rate_are_warned(model_dir, tmp_path, capsys):
    """10 samples, a 0.1-s blip, 0.1225 s (under a quarter of the 0.5-s window) and a 4 kHz file for an 8 kHz model: warned."""
    y = tone(CLASS_F0["Fl"], sample_rate=8000, seconds=1.0, rng=np.random.default_rng(0))
    sf.write(tmp_path / "ten.wav", y[:10], 8000)
    sf.write(tmp_path / "blip.wav", np.concatenate([np.zeros(8000), y[:800], np.zeros(8000)]), 8000)
    sf.write(tmp_path / "under.wav", y[:980], 8000)  # 0.1225 s of sound: just under a quarter of a window
    sf.write(tmp_path / "quarter.wav", y[:1020], 8000)  # 0.1275 s: just over it
    low = write_tone(tmp_path / "low.wav", sample_rate=4000, seconds=1.2)
    good = write_tone(tmp_path / "good.wav", sample_rate=44100, seconds=1.2)
    files = [tmp_path / "ten.wav", tmp_path / "blip.wav", tmp_path / "under.wav", tmp_path / "quarter.wav", low, good]
    code, out, err = classify_in_process(capsys, "--model", model_dir / "tiny.keras", "--json", *files)
    assert code == 0, err
    rows = {Path(r["file"]).name: r for r in map(json.loads, out.splitlines())}
    assert all(r["status"] == "ok" and r["windows"] >= 1 for r in rows.values())  # still classified
    assert "warning" not in rows["quarter.wav"]
    assert "warning" not in rows["good.wav"] and set(rows["good.wav"]) == {"file", "status", "windows", "top", "error"}
    assert rows["ten.wav"]["warning"].startswith("only 0.00125 s of sound above the threshold, under 25% of the model's 0.5-s window")
    assert rows["under.wav"]["warning"].startswith("only 0.1225 s of sound")
    blip = float(rows["blip.wav"]["warning"].split()[1])  # the blip and the envelope's margins around it
    assert rows["blip.wav"]["warning"].startswith("only ") and 0.1 <= blip < 0.125
    assert rows["low.wav"]["warning"].startswith("recorded at 4000 Hz, below the model's 8000 Hz: nothing above 2000 Hz")
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warned == [f"warning: {tmp_path / name}: {rows[name]['warning']}" for name in ("ten.wav", "blip.wav", "under.wav", "low.wav")]
    # the text output is unchanged: the warning goes to stderr only
    code, out, err = classify_in_process(capsys, "--model", model_dir / "tiny.keras", tmp_path / "ten.wav", good)
    assert [line.split(": ")[0] for line in out.splitlines()] == [str(tmp_path / "ten.wav"), str(good)]
    assert all(line.split(": ", 1)[1].count("%") == 3 for line in out.splitlines())
    assert [line.split(": ")[1] for line in err.splitlines() if line.startswith("warning: ")] == [str(tmp_path / "ten.wav")]


# --- a model failure is not a file's failure (issue 24) ----------------------------------------


class FailingModel:
    """The real model, except that call number ``fail_on`` raises (a model bug, a transient TF runtime error)."""

    def __init__(self, model, *, fail_on=1, error=RuntimeError("graph execution error: out of memory")):
        self.model, self.fail_on, self.error, self.calls = model, fail_on, error, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict_on_batch(self, x):
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error
        return self.model.predict_on_batch(x)


def test_a_model_failure_stops_classify_naming_the_model_not_the_files(model_dir, inputs, capsys, monkeypatch):
    """The bad file keeps its one error line; the model's failure (its first call) is one line naming the model, exit 1."""
    real = models.load

    def load(path):
        model, the_card = real(path)
        return FailingModel(model), the_card

    monkeypatch.setattr(models, "load", load)
    bad = inputs / "folder" / "text.flac"
    code, out, err = classify_in_process(
        capsys, "--model", model_dir / "tiny.keras", "--batch-size", "2", bad, inputs / "note.wav", inputs / "high.wav"
    )
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith(f"{bad}: error: not readable as audio")  # the file that is bad, and only it
    assert err.splitlines()[-1] == (
        f"error: {model_dir / 'tiny.keras'}: the model failed on a call of 2 windows (RuntimeError: graph execution error: out of memory)"
    )
    assert "note.wav" not in out + err and "high.wav" not in out + err


def test_a_model_failure_midway_is_raised_not_put_on_the_files(model_dir, inputs):
    model, the_card = models.load(model_dir / "tiny.keras")
    failing = FailingModel(model, fail_on=2, error=ValueError("a bug in the model"))
    paths = [inputs / "note.wav", inputs / "folder" / "empty.wav", inputs / "high.wav", inputs / "note.wav"]
    results = cli.classify_files(failing, the_card, [(str(p), None) for p in paths], batch_windows=3)
    first, second = next(results), next(results)  # the first call (note.wav's 3 windows) worked
    assert (first.status, second.status) == ("ok", "error") and "empty file" in second.error
    with pytest.raises(cli.ModelError, match=r"^the model failed on a call of 3 windows \(ValueError: a bug in the model\)$"):
        next(results)
    nan_model = FailingModel(model, fail_on=0)
    nan_model.predict_on_batch = lambda x: np.full((len(x), len(LABELS)), np.nan)
    with pytest.raises(cli.ModelError, match="NaN"):
        list(cli.classify_files(nan_model, the_card, [(str(inputs / "note.wav"), None)]))


def test_a_folder_named_like_an_audio_file_is_searched_not_listed(tmp_path):
    """``takes.wav/`` (a folder, as some recorders name a session) is not a file to classify: its files are."""
    session = tmp_path / "rec" / "takes.wav"
    session.mkdir(parents=True)
    (session / "1.flac").write_bytes(b"")
    (tmp_path / "rec" / "a.wav").write_bytes(b"")
    found = cli.find_audio([str(tmp_path / "rec")])
    assert [Path(p).relative_to(tmp_path / "rec").as_posix() for p, _ in found] == ["a.wav", "takes.wav/1.flac"]
    assert all(error is None for _, error in found)


def test_a_failed_files_windows_in_a_shared_call_do_not_shift_the_next_files_rows():
    """A file that fails after some of its windows joined a model call keeps its rows: the next file reads its own."""

    class Echo:  # each window's probabilities name it: [v, 1 - v] from its first sample
        def predict_on_batch(self, x):
            v = x[:, 0, 0].astype(np.float64)
            return np.stack([v, 1.0 - v], axis=1)

    batcher = cli._Batcher(Echo(), size=8)
    bad, good = cli.FileResult(path="bad.wav"), cli.FileResult(path="good.wav")
    batcher.add(bad, np.full((3, 4), 0.9, np.float32))
    bad.error, bad.windows, bad._sum = "contains NaN or infinite samples", 0, None  # as classify_files marks it
    batcher.add(good, np.full((2, 4), 0.25, np.float32))
    batcher.flush()
    assert bad.windows == 0 and bad._sum is None
    assert good.windows == 2
    np.testing.assert_allclose(good._sum, [0.5, 1.5])


# Hostile mutants, round 5 (benchmarks/hostile_mutants/round5): cases beside the tested ones.


def test_the_window_command_writes_one_clean_window_and_prints_its_path(tmp_path, capsys):
    """``instrclf window``: the 16-bit WAV of one index row, and its path on stdout for a script to pick up."""
    from synthetic import make_clean_dir, write_params

    from instrclf import layout

    clean_dir = make_clean_dir(tmp_path / "clean")
    params = write_params(tmp_path / "params.yaml", TINY_PARAMS)
    index = layout.read_index(clean_dir)
    out = tmp_path / "w.wav"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["window", str(clean_dir), index["window"].iloc[3], "-o", str(out), "--params", str(params)])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"{out}\n"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 4000, "PCM_16")
    np.testing.assert_array_equal(sf.read(out, dtype="int16")[0], np.load(layout.shard_path(clean_dir, index["shard"].iloc[3]))[index["row"].iloc[3]])


# Hostile mutants, round 6 (benchmarks/hostile_mutants/round6): cases beside the tested ones.


def test_exactly_a_quarter_window_of_sound_is_not_warned(model_dir, tmp_path, capsys):
    """The rule warns under a quarter of a window: 1000 samples at 8 kHz (0.125 s of a 0.5-s window) are enough, 999 not."""
    sf.write(tmp_path / "quarter.wav", np.full(1000, 0.5, np.float32), 8000, subtype="FLOAT")
    sf.write(tmp_path / "under.wav", np.full(999, 0.5, np.float32), 8000, subtype="FLOAT")
    code, out, err = classify_in_process(capsys, "--model", model_dir / "tiny.keras", "--json",
                                         tmp_path / "quarter.wav", tmp_path / "under.wav")
    assert code == 0, err
    rows = {Path(r["file"]).name: r for r in map(json.loads, out.splitlines())}
    assert rows["quarter.wav"]["windows"] == 1 and "warning" not in rows["quarter.wav"]
    assert rows["under.wav"]["warning"].startswith("only 0.1249 s of sound")


# Hostile mutants, round 7 (benchmarks/hostile_mutants/round7): cases beside the tested ones.


def test_a_card_naming_more_folds_than_the_model_holds_is_refused(model_dir, tmp_path):
    """An ensemble's card (folds 0 and 1) beside a model that holds fold 0's back end alone: refused."""
    model, _ = models.load(model_dir / "tiny.keras")  # a baseline of fold 0
    cli.check_card_fits(model, card(test_folds=[0]), path=tmp_path / "m.keras")
    with pytest.raises(DataError, match=r"back ends \['baseline_fold0', 'baseline_fold1'\].*belongs to another model"):
        cli.check_card_fits(model, card(test_folds=[0, 1]), path=tmp_path / "m.keras")


# --- --as-set: a set's colouring brought to the model's reference ------------------------------


@pytest.fixture(scope="module")
def coloured_model(tmp_path_factory):
    """A tiny model whose card says it was trained at a colour reference, averaged over spectra moved by
    -1..1 bands (predict.shift_average, as the user models are)."""
    root = tmp_path_factory.mktemp("coloured")
    features = FeatureSettings.from_params(TINY_PARAMS["features"])
    the_card = card(colour_degree=2, colour_reference=np.linspace(-70.0, -40.0, features.n_mels).tolist())
    model = models.build("baseline", config=BaselineConfig.from_params(TINY_PARAMS["models"]["baseline"]), clean=CLEAN,
                         features=features, n_classes=len(LABELS))
    model = models.assemble(model.get_layer("frontend"), models.back_ends(model), name="baseline", shift_average=1)
    models.save(model, root / "coloured.keras", card=the_card)
    return root / "coloured.keras"


def test_as_set_shifts_every_window_by_the_sets_colouring_to_the_models(coloured_model, inputs):
    from instrclf import colour

    model, the_card = models.load(coloured_model)
    paths = [inputs / "note.wav", inputs / "folder" / "empty.wav", inputs / "high.wav", inputs / "folder" / "b.flac"]
    items = [(str(p), None) for p in paths]
    front = model.get_layer("frontend")
    windows = np.concatenate([audio.prepare(*audio.load(p), **the_card.clean.model_dump()) for p in paths if p.stat().st_size])
    spectra = np.asarray(front.predict(windows[..., None], verbose=0))
    shift = colour.shift(colour.mean_spectrum(spectra), degree=2, target=the_card.colour_reference)
    back, moved = models.back_ends(model)[0], spectra + shift[None, None, :, None]
    n = moved.shape[2]  # then the views of the model's shift averaging, which the set's model keeps
    expected = np.mean([np.asarray(back(moved[:, :, np.clip(np.arange(n) - k, 0, n - 1), :])) for k in (-1, 0, 1)], axis=0)
    for batch, block in ((3, 1000), (256, None)):  # the padding of a short call never enters the mean
        shifted = cli.set_model(model, the_card, items, batch_windows=batch, block_frames=block)
        np.testing.assert_allclose(shifted.predict(windows[..., None], verbose=0), expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(expected, model.predict(windows[..., None], verbose=0), atol=1e-4)  # it does move them
    results = list(cli.classify_files(shifted, the_card, items))
    assert [r.status for r in results] == ["ok", "error", "ok", "ok"]


def test_as_set_on_the_command_line_and_its_refusals(coloured_model, model_dir, inputs, capsys):
    code, out, err = classify_in_process(capsys, "--model", coloured_model, "--as-set", "--json", inputs / "note.wav",
                                         inputs / "high.wav")
    assert code == 0 and len(out.splitlines()) == 2, err
    model, the_card = models.load(coloured_model)
    items = [(str(inputs / "note.wav"), None), (str(inputs / "high.wav"), None)]
    want = list(cli.classify_files(cli.set_model(model, the_card, items), the_card, items))
    for line, result in zip(out.splitlines(), want, strict=True):
        got = json.loads(line)
        assert got["top"][0]["label"] == LABELS[int(np.argmax(result.probs))]
        assert got["top"][0]["probability"] == pytest.approx(float(np.max(result.probs)), abs=1e-3)
    code, out, err = classify_in_process(capsys, "--model", model_dir / "tiny.keras", "--as-set", inputs / "note.wav")
    assert (code, out) == (1, "") and err.strip() == (
        f"error: {model_dir / 'tiny.keras'}: --as-set: the model was trained without train.library_colour, "
        "so it has no colouring to bring the set to")
    code, _, err = classify_in_process(capsys, "--model", coloured_model, "--as-set", "--runtime", "litert", inputs / "note.wav")
    assert code == 2 and "--as-set runs the .keras model with Keras" in err
    code, out, err = classify_in_process(capsys, "--model", coloured_model, "--as-set", inputs / "folder" / "quiet.wav")
    assert (code, out) == (1, "") and err.startswith(f"error: {coloured_model}: --as-set: no file holds sound")


def test_as_set_leaves_a_file_that_fails_midway_out_of_the_sets_colouring(coloured_model, tmp_path):
    model, the_card = models.load(coloured_model)
    y = tone(CLASS_F0["Tbn"], sample_rate=8000, seconds=3.0, rng=np.random.default_rng(0))
    y[-100] = np.nan  # found only in the last block: its first windows were read
    sf.write(tmp_path / "nan.wav", y, 8000, subtype="FLOAT")
    good = write_tone(tmp_path / "good.wav", sample_rate=8000, seconds=1.0)
    x = audio.prepare(*audio.load(good), **the_card.clean.model_dump())[..., None]
    without = cli.set_model(model, the_card, [(str(good), None)], batch_windows=4, block_frames=2000)
    with_bad = cli.set_model(model, the_card, [(str(tmp_path / "nan.wav"), None), (str(good), None)],
                             batch_windows=4, block_frames=2000)
    np.testing.assert_array_equal(with_bad.predict(x, verbose=0), without.predict(x, verbose=0))
    shift = with_bad.get_layer("colour_shift")
    assert type(shift).from_config(shift.get_config()).values == shift.values  # registered, serialisable
