"""Tests of instrclf.clean and stages/clean.py on tiny synthetic raw sets in TinySOL's layout."""

import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import soundfile as sf
import yaml
from tqdm import tqdm

from instrclf import audio, clean, data, layout
from instrclf.errors import DataError, ParameterError
from instrclf.settings import CleanSettings
from instrclf.layout import METADATA_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = CleanSettings(sample_rate=16000, delta_time=1.0, threshold_db=-64.3, envelope_ms=50)
METRIC_KEYS = {
    "libraries",
    "files_read",
    "notes_silent",
    "notes_padded",
    "windows_written",
    "classes",
    "windows_per_class_min",
    "windows_per_class_max",
    "seconds_in",
    "seconds_kept",
    "samples_clipped",
}
INSTRUMENTS = [("Winds/Flute", "Fl", "Winds"), ("Winds/Oboe", "Ob", "Winds"), ("Strings/Violin", "Vn", "Strings")]


def _note(rng, seconds, sr, *, channels=1, freq=440.0, onset=0.1):
    """A seeded decaying tone with a little noise and ``onset`` seconds of near silence before it."""
    n = round(seconds * sr)
    t = np.arange(n) / sr
    y = 0.4 * np.sin(2 * np.pi * freq * t) * np.exp(-t) + 1e-3 * rng.standard_normal(n)
    y = np.concatenate([np.zeros(round(onset * sr)), y])
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def make_raw(root, rows, *, seed=0):
    """Write ``root/TinySOL_metadata.csv`` and ``root/audio/<Path>`` for each row.

    Each row: dict with Path, Fold, Family, Instrument (abbr.) and optionally ``y``
    (samples), ``sr``, ``subtype``, ``seconds``, ``channels``.
    """
    rng = np.random.default_rng(seed)
    records = []
    for i, row in enumerate(rows):
        row = dict(row)
        sr = row.pop("sr", 44100)
        subtype = row.pop("subtype", "PCM_16")
        y = row.pop("y", None)
        if y is None:
            y = _note(rng, row.pop("seconds", 1.5), sr, channels=row.pop("channels", 1), freq=200.0 + 37 * i)
        path = root / "audio" / row["Path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, sr, subtype=subtype)
        records.append({c: row.get(c, "") for c in METADATA_COLUMNS})
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records, columns=list(METADATA_COLUMNS)).to_csv(root / "TinySOL_metadata.csv", index=False)
    return root


def row(folder, abbr, family, name, fold, **extra):
    """One metadata row in TinySOL's naming; ``extra`` goes to :func:`make_raw`."""
    path = f"{folder}/ordinario/{abbr}-ord-{name}-mf-N.wav"
    return {"Path": path, "Fold": fold, "Family": family, "Instrument (abbr.)": abbr, **extra}


def small_rows():
    """Three instruments x three notes of 0.5, 2.5 and 1.3 s (0.1 s onset included): 1 padded, 2 and 1 windows."""
    rows = []
    for k, (folder, abbr, family) in enumerate(INSTRUMENTS):
        for j, seconds in enumerate([0.4, 2.4, 1.2]):
            rows.append(row(folder, abbr, family, f"C{j + 3}", (k + j) % 5, seconds=seconds))
    return rows


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "raw", small_rows())


def tree(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- outputs ------------------------------------------------------------------------------


def test_run_writes_windows_index_and_metrics(raw, tmp_path):
    out = tmp_path / "clean"
    metrics = clean.run(raw, out, clean=CONFIG, target="instrument", jobs=1, progress=False)
    index = pd.read_csv(out / "index.csv")
    assert tuple(index.columns) == layout.INDEX_COLUMNS
    rows = list(index.itertuples(index=False))
    assert rows == sorted(rows, key=lambda r: (r.Path, r.window_index))
    assert index["fold"].dtype == np.int64 and index["window_index"].dtype == np.int64
    # 0.5 s (incl. onset) -> 1 padded window, 2.5 s -> 2, 1.3 s -> 1; per instrument 4.
    assert index.groupby("Path").size().tolist() == [1, 2, 1] * 3
    assert (index["label"] == index["instrument"]).all()
    assert (index.groupby("Path")["fold"].nunique() == 1).all()
    for r in index.itertuples():
        assert r.window == f"{r.label}/{Path(r.Path).stem}_{r.window_index}.wav"
    # 12 windows in one shard, rows in index order; no file per window
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["index.csv", "shards/00000.npy"]
    assert (index["shard"] == 0).all() and index["row"].tolist() == list(range(12))
    assert np.load(out / "shards" / "00000.npy").shape == (12, 16000)
    # any window can be listened to: a 16-bit WAV of exactly its samples
    wav = data.write_window(out, index["window"].iloc[3], tmp_path / "w.wav", sample_rate=16000)
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    np.testing.assert_array_equal(sf.read(wav, dtype="int16")[0], np.load(out / "shards" / "00000.npy")[3])
    assert set(metrics) == METRIC_KEYS
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    assert metrics["files_read"] == 9 and metrics["windows_written"] == 12 == len(index)
    assert metrics["notes_padded"] == 3 and metrics["notes_silent"] == 0 and metrics["classes"] == 3
    assert metrics["windows_per_class_min"] == metrics["windows_per_class_max"] == 4
    assert metrics["seconds_in"] == pytest.approx(3 * (0.5 + 2.5 + 1.3), abs=1e-3)
    assert 0 < metrics["seconds_kept"] <= metrics["seconds_in"]


@pytest.mark.parametrize(
    "target, column, labels",
    [("instrument", "instrument", {"Fl", "Ob", "Vn"}), ("family", "family", {"Winds", "Strings"})],
)
def test_target_picks_the_label(raw, tmp_path, target, column, labels):
    out = tmp_path / "clean"
    metrics = clean.run(raw, out, clean=CONFIG, target=target, jobs=1, progress=False)
    index = pd.read_csv(out / "index.csv")
    assert (index["label"] == index[column]).all() and set(index["label"]) == labels
    assert metrics["classes"] == len(labels)


def test_windows_are_exactly_prepare_of_the_file(raw, tmp_path):
    out = tmp_path / "clean"
    clean.run(raw, out, clean=CONFIG, target="instrument", jobs=1, progress=False)
    index = pd.read_csv(out / "index.csv")
    for path, group in index.groupby("Path"):
        y, sr = audio.load(raw / "audio" / path)
        cut = audio.prepare(y, sr, sample_rate=16000, threshold_db=-64.3, envelope_ms=50, delta_time=1.0)
        expected, _ = audio.to_pcm16(cut)
        rows = group.sort_values("window_index")
        got = layout.Windows(out, rows, n_samples=16000).read_pcm(rows)
        np.testing.assert_array_equal(got, expected)
        # and as float32, bit for bit what soundfile reads from a 16-bit WAV of them
        wav = tmp_path / "note.wav"
        sf.write(wav, expected.reshape(-1), 16000, subtype="PCM_16")
        floats = data.load_windows(out, rows, n_samples=16000)
        np.testing.assert_array_equal(floats.reshape(-1), sf.read(wav, dtype="float32")[0])


def test_shards_keep_a_note_together_and_stay_small(raw, tmp_path):
    """Shards of at most 3 windows: 12 windows of notes of 1-2 windows in several shards, no note split."""
    out = tmp_path / "clean"
    clean.run(raw, out, clean=CONFIG, target="instrument", jobs=2, progress=False, shard_bytes=3 * 2 * 16000)
    index = layout.read_index(out)
    sizes = [len(np.load(p)) for p in sorted((out / "shards").glob("*.npy"))]
    assert len(sizes) > 4 and max(sizes) <= 3 and sum(sizes) == 12
    assert (index.groupby("Path")["shard"].nunique() == 1).all()
    assert sorted(zip(index["shard"], index["row"])) == [(s, r) for s, n in enumerate(sizes) for r in range(n)]
    whole = tmp_path / "whole"
    clean.run(raw, whole, clean=CONFIG, target="instrument", jobs=1, progress=False)
    np.testing.assert_array_equal(data.load_windows(out, index, n_samples=16000),
                                  data.load_windows(whole, layout.read_index(whole), n_samples=16000))


def test_mixed_formats_rates_and_channels(tmp_path):
    rows = []
    combos = [
        (8000, "PCM_U8", 1),
        (16000, "PCM_16", 2),
        (22050, "PCM_24", 6),
        (44100, "PCM_32", 1),
        (48000, "FLOAT", 2),
        (96000, "DOUBLE", 1),
    ]
    for i, (sr, subtype, channels) in enumerate(combos):
        folder, abbr, family = INSTRUMENTS[i % 3]
        rows.append(row(folder, abbr, family, f"D{i}", i % 5, sr=sr, subtype=subtype, channels=channels, seconds=2.4))
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=2, progress=False)
    assert metrics["files_read"] == 6 and metrics["windows_written"] == 12
    assert metrics["seconds_in"] == pytest.approx(6 * 2.5, abs=1e-3)


def test_silent_note_is_skipped_and_counted(tmp_path):
    rows = small_rows()
    rows.append(row("Winds/Flute", "Fl", "Winds", "G9", 2, y=np.full(44100, 1e-5)))  # -100 dBFS
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    index = pd.read_csv(tmp_path / "clean" / "index.csv")
    assert metrics["notes_silent"] == 1 and metrics["files_read"] == 10 and metrics["windows_written"] == 12
    assert not index["Path"].str.contains("G9").any()


def test_silent_notes_are_not_counted_as_padded(tmp_path):
    """A silent note keeps 0 samples: it is silent, not a short note padded to a window."""
    rows = small_rows()  # 3 padded notes among 9
    rows += [row("Winds/Flute", "Fl", "Winds", f"G{k}", 2, y=np.zeros(8000)) for k in (7, 8)]
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert (metrics["notes_silent"], metrics["notes_padded"], metrics["files_read"]) == (2, 3, 11)


def test_every_note_silent_is_an_error(tmp_path):
    raw = make_raw(tmp_path / "raw", [row("Winds/Flute", "Fl", "Winds", "C4", 0, y=np.zeros(16000))])
    with pytest.raises(DataError, match="no windows"):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert not (tmp_path / "clean").exists()


def test_a_class_with_only_silent_notes_counts_as_zero(tmp_path):
    rows = small_rows()[:3] + [row("Strings/Violin", "Vn", "Strings", "C4", 1, y=np.zeros(16000))]
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert metrics["windows_per_class_min"] == 0 and metrics["windows_per_class_max"] == 4
    assert metrics["classes"] == 1
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["index.csv", "shards"]


# --- determinism --------------------------------------------------------------------------


def test_byte_identical_across_runs_and_jobs(raw, tmp_path):
    outputs, metrics = [], []
    for n, jobs in enumerate([1, 2, 2]):
        out = tmp_path / f"clean{n}"
        metrics.append(clean.run(raw, out, clean=CONFIG, target="instrument", jobs=jobs, progress=False))
        outputs.append(tree(out))
    assert outputs[0] == outputs[1] == outputs[2]
    assert metrics[0] == metrics[1] == metrics[2]


def test_rerun_replaces_previous_output(raw, tmp_path):
    out = tmp_path / "clean"
    out.mkdir()
    (out / "stale.wav").write_bytes(b"old")
    clean.run(raw, out, clean=CONFIG, target="family", jobs=1, progress=False)
    assert not (out / "stale.wav").exists() and (out / "index.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "raw"]


# --- bad input ----------------------------------------------------------------------------


def _break(path, kind):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not audio at all\n" * 50)
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "nan":
        y = np.full(16000, 0.1, dtype=np.float32)
        y[123] = np.nan
        sf.write(path, y, 16000, subtype="FLOAT")


def test_bad_files_one_error_listing_all_and_nothing_written(raw, tmp_path):
    out = tmp_path / "clean"
    out.mkdir()
    (out / "previous.txt").write_text("keep me")
    paths = sorted(pd.read_csv(raw / "TinySOL_metadata.csv")["Path"])
    kinds = {paths[0]: "empty", paths[2]: "text", paths[4]: "truncated", paths[7]: "nan"}
    for path, kind in kinds.items():
        _break(raw / "audio" / path, kind)
    with pytest.raises(DataError) as info:
        clean.run(raw, out, clean=CONFIG, target="instrument", jobs=2, progress=False)
    message = str(info.value)
    assert message.startswith("4 of 9 audio file(s) are missing or bad: ")
    for path in kinds:
        assert path in message
    for reason in ["empty", "not readable as audio", "truncated", "NaN"]:
        assert reason in message
    assert tree(out) == {"previous.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "raw"]  # no temporary folder left


def test_missing_and_bad_files_are_reported_together(raw, tmp_path):
    paths = sorted(pd.read_csv(raw / "TinySOL_metadata.csv")["Path"])
    (raw / "audio" / paths[1]).unlink()
    _break(raw / "audio" / paths[5], "text")
    with pytest.raises(DataError) as info:
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=2, progress=False)
    message = str(info.value)
    assert message.startswith("2 of 9 audio file(s) are missing or bad: ")
    assert f"{paths[1]}: missing (listed in TinySOL_metadata.csv)" in message
    assert f"{paths[5]}: not readable as audio" in message
    assert not (tmp_path / "clean").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


@pytest.mark.parametrize("column", ["Path", "Fold", "Family", "Instrument (abbr.)"])
def test_missing_metadata_column_is_named(raw, tmp_path, column):
    csv = raw / "TinySOL_metadata.csv"
    pd.read_csv(csv).drop(columns=[column]).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"missing column.*{column.replace('(', '.').replace(')', '.')}"):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)


def test_older_metadata_without_instance_id_is_fine(raw, tmp_path):
    csv = raw / "TinySOL_metadata.csv"
    pd.read_csv(csv).drop(columns=["Instance ID"]).to_csv(csv, index=False)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert metrics["files_read"] == 9


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda df: df.assign(Fold=["x"] + list(df["Fold"][1:])), "Fold must be an integer"),
        (lambda df: df.assign(Fold=[1.5] + list(df["Fold"][1:])), "Fold must be an integer"),
        (lambda df: pd.concat([df, df.iloc[:1]]), "listed more than once"),
        (lambda df: df.assign(Family=[""] + list(df["Family"][1:])), "family '' is not one of TinySOL's"),
        (lambda df: df.assign(Path=["../escape.wav"] + list(df["Path"][1:])), "without '..'"),
        (lambda df: df.assign(**{"Instrument (abbr.)": ["../x"] + list(df["Instrument (abbr.)"][1:])}), "instrument '../x' is not one"),
        (lambda df: df.assign(Family=["Strings"] + list(df["Family"][1:])), "belongs to family Winds"),
        (lambda df: df.iloc[:0], "no rows"),
    ],
)
def test_bad_metadata_is_named(raw, tmp_path, edit, expected):
    csv = raw / "TinySOL_metadata.csv"
    edit(pd.read_csv(csv)).to_csv(csv, index=False)
    with pytest.raises(DataError, match=expected):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert not (tmp_path / "clean").exists()


def test_colliding_window_names_are_refused(tmp_path):
    rows = [row("Winds/Flute", "Fl", "Winds", "C4", 0), row("Winds/Flute", "Fl", "Winds", "C4", 1)]
    rows[1]["Path"] = rows[1]["Path"].replace("ordinario", "other")
    raw = make_raw(tmp_path / "raw", rows)
    with pytest.raises(DataError, match="would both write Fl/Fl-ord-C4-mf-N_<i>.wav"):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)


def test_window_names_that_collide_only_under_the_family_target_are_refused(tmp_path):
    """Flute and oboe notes with the same file name: apart as instruments, the same Winds/<stem>_<i>.wav as a family."""
    rows = [row("Winds/Flute", "Fl", "Winds", "C4", 0), row("Winds/Oboe", "Ob", "Winds", "C4", 1)]
    rows[0]["Path"], rows[1]["Path"] = "Winds/Flute/ordinario/C4-mf.wav", "Winds/Oboe/ordinario/C4-mf.wav"
    raw = make_raw(tmp_path / "raw", rows)
    assert clean.run(raw, tmp_path / "by-instrument", clean=CONFIG, target="instrument", jobs=1, progress=False)["files_read"] == 2
    with pytest.raises(DataError, match=r"Winds/Flute/ordinario/C4-mf\.wav and Winds/Oboe/ordinario/C4-mf\.wav would both write Winds/C4-mf_<i>\.wav"):
        clean.run(raw, tmp_path / "by-family", clean=CONFIG, target="family", jobs=1, progress=False)
    assert not (tmp_path / "by-family").exists()


@pytest.mark.parametrize("target", ["Instrument", "pitch", None])
def test_unknown_target_refused_before_any_work(tmp_path, target):
    with pytest.raises(ParameterError, match=f"data.target must be one of .*, got {target!r}"):
        clean.run(tmp_path / "does-not-exist", tmp_path / "clean", clean=CONFIG, target=target)
    assert not (tmp_path / "clean").exists()


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bad_jobs_refused(raw, tmp_path, jobs):
    with pytest.raises(ParameterError, match="jobs"):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=jobs)


# --- threshold image ----------------------------------------------------------------------


def test_pick_notes_is_deterministic_and_spread():
    notes = [clean.Note(path=f"x/{i:02d}.wav", fold=0, family="F", instrument="A", library="L", label="A") for i in range(9)]
    notes += [clean.Note(path="y/0.wav", fold=0, family="F", instrument="B", library="L", label="B")]
    picked = clean.pick_notes(list(reversed(notes)), per_class=2)
    assert [n.path for n in picked] == ["x/00.wav", "x/08.wav", "y/0.wav"]
    assert [n.path for n in clean.pick_notes(notes, per_class=3)][:3] == ["x/00.wav", "x/04.wav", "x/08.wav"]


# --- stage script -------------------------------------------------------------------------


def _params(tmp_path, **clean_params):
    """The project's params.yaml with ``data.target = family`` and ``clean`` overridden."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["target"] = "family"
    params["clean"] = {"sample_rate": 16000, "delta_time": 1.0, "threshold_db": -64.3, "envelope_ms": 50, **clean_params}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def _stage_command(raw):
    return [
        sys.executable, str(ROOT / "stages" / "clean.py"), "--params", "params.yaml", "--raw", str(raw),
        "--out", "data/clean", "--metrics", "metrics/clean.json", "--threshold-plot", "plots/images/threshold.png",
    ]


def _stage(tmp_path, raw, **clean_params):
    _params(tmp_path, **clean_params)
    return subprocess.run(_stage_command(raw), check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_stage_script_writes_its_outputs(raw, tmp_path):
    result = _stage(tmp_path, raw)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics" / "clean.json").read_text())
    assert set(metrics) == METRIC_KEYS and metrics["windows_written"] == 12
    assert (tmp_path / "data" / "clean" / "index.csv").exists()
    assert (tmp_path / "plots" / "images" / "threshold.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.startswith("clean: files_read=9,")


def test_stage_script_bad_param_exits_1_and_writes_nothing(raw, tmp_path):
    result = _stage(tmp_path, raw, threshold_db=6)
    assert result.returncode == 1
    assert result.stderr.startswith("error: clean: clean.threshold_db = 6:")
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_killed_stage_leaves_no_worker_and_next_run_removes_its_temporary_folder(tmp_path):
    """SIGKILL mid-work: the workers die with the stage (PR_SET_PDEATHSIG); a rerun removes the stale folder."""
    rows = []
    for k in range(48):
        folder, abbr, family = INSTRUMENTS[k % 3]
        rows.append(row(folder, abbr, family, f"K{k}", k % 5, sr=96000, channels=2, seconds=6.0))
    raw = make_raw(tmp_path / "raw", rows)
    _params(tmp_path)
    stage = subprocess.Popen(_stage_command(raw), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline and stage.poll() is None:
            workers = psutil.Process(stage.pid).children(recursive=True)
            if len(workers) >= 2 and list((tmp_path / "data").glob(".clean.tmp-*/shards")):
                break  # the pool is up and the shards are being written
            time.sleep(0.02)
        assert stage.poll() is None and len(workers) >= 2, "the stage finished before it could be killed"
        stage.send_signal(signal.SIGKILL)
        stage.wait(timeout=10)
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
        stage.stderr.close()
    deadline = time.monotonic() + 5
    while any(_alive(w.pid) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w.pid for w in workers if _alive(w.pid)], "workers outlived the killed stage"
    stale = list((tmp_path / "data").glob(".clean.tmp-*"))
    assert stale and not (tmp_path / "data" / "clean").exists()

    result = subprocess.run(_stage_command(raw), cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["clean"]  # no .clean.tmp-* left
    assert json.loads((tmp_path / "metrics" / "clean.json").read_text())["files_read"] == 48


def test_the_same_stem_in_two_formats_is_a_collision(tmp_path):
    """x.wav and x.flac of one label would both write <label>/x_<i>.wav: refused before anything is written."""
    rows = [row("Winds/Flute", "Fl", "Winds", "C4", 0), row("Winds/Flute", "Fl", "Winds", "C4", 1)]
    rows[1]["Path"] = rows[1]["Path"].replace(".wav", ".flac")
    raw = make_raw(tmp_path / "raw", rows)
    with pytest.raises(DataError, match=r"Fl-ord-C4-mf-N\.flac and Winds/Flute/ordinario/Fl-ord-C4-mf-N\.wav would both write Fl/Fl-ord-C4-mf-N_<i>\.wav"):
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert not (tmp_path / "clean").exists()


def test_a_note_exactly_one_window_long_is_not_counted_as_padded(tmp_path):
    """A note whose loud part fills exactly one window gives that window unpadded: padded counts only
    notes shorter than a window (here the 0.5-s note), not one that fits it to the sample."""
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000)  # loud from first to last sample
    rows = [
        row("Winds/Flute", "Fl", "Winds", "A4", 0, y=tone, sr=16000),
        row("Winds/Oboe", "Ob", "Winds", "A4", 1, y=tone[:8000], sr=16000),
    ]
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert (metrics["windows_written"], metrics["seconds_kept"]) == (2, 1.5)
    assert metrics["notes_padded"] == 1


# --- what a user reads: errors, metrics, progress (jobs=1: every note is cleaned in this process) ---------------


def test_missing_and_unreadable_notes_are_each_named_with_their_reason_in_path_order(raw, tmp_path):
    paths = sorted(pd.read_csv(raw / "TinySOL_metadata.csv")["Path"])
    (raw / "audio" / paths[1]).unlink()
    _break(raw / "audio" / paths[5], "text")
    _break(raw / "audio" / paths[6], "truncated")
    with pytest.raises(DataError) as info:
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    head, _, listed = str(info.value).partition(": ")
    assert head == "3 of 9 audio file(s) are missing or bad"
    audio_dir = str(raw / "audio")
    entries = re.split(f"; (?={re.escape(audio_dir)})", listed)  # one entry per bad note, "; " between them
    assert [e.split(": ", 1)[0] for e in entries] == [str(raw / "audio" / paths[i]) for i in (1, 5, 6)]
    assert entries[0].endswith(": missing (listed in TinySOL_metadata.csv)")
    assert ": not readable as audio" in entries[1] and "None" not in entries[1]
    assert ": truncated" in entries[2]
    assert not (tmp_path / "clean").exists()


def test_every_collision_of_window_names_is_listed(tmp_path):
    """Two pairs of notes whose windows would share names: one error naming both pairs, "; " between them."""
    rows = [row("Winds/Flute", "Fl", "Winds", name, k) for k, name in enumerate(["C4", "C4", "D4", "D4"])]
    rows[1]["Path"] = rows[1]["Path"].replace("ordinario", "other")
    rows[3]["Path"] = rows[3]["Path"].replace("ordinario", "other")
    raw = make_raw(tmp_path / "raw", rows)
    with pytest.raises(DataError) as info:
        clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert str(info.value) == (
        f"{raw / 'TinySOL_metadata.csv'}: window names collide: "
        "Winds/Flute/ordinario/Fl-ord-C4-mf-N.wav and Winds/Flute/other/Fl-ord-C4-mf-N.wav would both write "
        "Fl/Fl-ord-C4-mf-N_<i>.wav; "
        "Winds/Flute/ordinario/Fl-ord-D4-mf-N.wav and Winds/Flute/other/Fl-ord-D4-mf-N.wav would both write "
        "Fl/Fl-ord-D4-mf-N_<i>.wav"
    )


def _tone(n, *, clip_at=(), sr=16000):
    """``n`` samples of a 440-Hz tone at half scale, loud from the first to the last sample; ``clip_at``: samples set past full scale."""
    y = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(n) / sr)
    for i, value in clip_at:
        y[i] = value
    return y


def test_clipped_samples_are_summed_over_every_note_and_a_class_of_one_window_counts(tmp_path):
    """Three notes of exactly one window, one per instrument: 3 + 5 samples past full scale, then none."""
    rows = [
        row("Winds/Flute", "Fl", "Winds", "A4", 0, y=_tone(16000, clip_at=[(100, 1.5), (200, -1.5), (300, 2.0)]),
            sr=16000, subtype="FLOAT"),
        row("Winds/Oboe", "Ob", "Winds", "A4", 1, y=_tone(16000, clip_at=[(i, -1.25) for i in range(10, 15)]),
            sr=16000, subtype="FLOAT"),
        row("Strings/Violin", "Vn", "Strings", "A4", 2, y=_tone(16000), sr=16000, subtype="FLOAT"),
    ]
    raw = make_raw(tmp_path / "raw", rows)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert metrics["samples_clipped"] == 8
    assert (metrics["windows_written"], metrics["classes"]) == (3, 3)
    assert metrics["windows_per_class_min"] == metrics["windows_per_class_max"] == 1
    pcm = np.load(tmp_path / "clean" / "shards" / "00000.npy")
    assert int(np.count_nonzero((pcm == 32767) | (pcm == -32768))) == 8  # the clipped samples sit at full scale


def test_libraries_counts_the_libraries_that_gave_windows(tmp_path):
    """Two libraries with sounding notes and a third whose only note is silent: 2 libraries."""
    rows = [row("Winds/Flute", "Fl", "Winds", "A4", 0), row("Winds/Oboe", "Ob", "Winds", "A4", 1),
            row("Strings/Violin", "Vn", "Strings", "A4", 2, y=np.zeros(16000))]
    raw = make_raw(tmp_path / "raw", rows)
    csv = raw / "TinySOL_metadata.csv"
    pd.read_csv(csv).assign(Library=["Alpha", "Beta", "Gamma"]).to_csv(csv, index=False)
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert (metrics["libraries"], metrics["notes_silent"]) == (2, 1)
    assert sorted(set(layout.read_index(tmp_path / "clean")["library"])) == ["Alpha", "Beta"]


def test_seconds_are_rounded_to_the_millisecond(tmp_path):
    """12,345 loud samples at 16 kHz are 0.7715625 s, in and kept: reported as 0.772."""
    raw = make_raw(tmp_path / "raw", [row("Winds/Flute", "Fl", "Winds", "A4", 0, y=_tone(12345), sr=16000)])
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert metrics["seconds_in"] == metrics["seconds_kept"] == 0.772


def test_a_note_of_a_single_loud_sample_is_one_padded_window(tmp_path):
    raw = make_raw(tmp_path / "raw", [row("Winds/Flute", "Fl", "Winds", "A4", 0, y=np.array([0.5]), sr=16000)])
    metrics = clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, progress=False)
    assert (metrics["windows_written"], metrics["notes_padded"], metrics["notes_silent"]) == (1, 1, 0)
    window = np.load(tmp_path / "clean" / "shards" / "00000.npy")[0]
    assert window[0] == 16384 and not window[1:].any()  # the sample, then silence


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a user's is (tqdm hides its bar on anything else)."""

    def isatty(self):
        return True


def _terminal(monkeypatch):
    """sys.stderr as a terminal for one test, without tqdm's monitor thread: a thread left running in a
    process that later forks can leave a fork holding tqdm's lock for ever (mutmut forks from this process)."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    return terminal


@pytest.mark.parametrize("progress", [None, True, False])
def test_a_terminal_shows_a_clean_bar_counting_notes_unless_progress_is_off(raw, tmp_path, monkeypatch, progress):
    """``progress`` left out (None here) or True: a bar "clean: 100% ... 9/9 ... note/s"; False: nothing."""
    terminal = _terminal(monkeypatch)
    kwargs = {} if progress is None else {"progress": progress}
    clean.run(raw, tmp_path / "clean", clean=CONFIG, target="instrument", jobs=1, **kwargs)
    shown = terminal.getvalue()
    if progress is False:
        assert shown == ""
    else:
        last = shown.replace("\n", "\r").strip("\r").split("\r")[-1]
        assert re.match(r"clean: 100%\|.*\| 9/9 \[", last), last
        assert re.search(r"\d(note/s|s/note)\]$", last), last


def test_without_per_class_two_notes_of_each_label_are_picked():
    notes = [clean.Note(path=f"x/{i}.wav", fold=0, family="F", instrument="A", library="L", label="A") for i in range(5)]
    assert [n.path for n in clean.pick_notes(notes)] == ["x/0.wav", "x/4.wav"]
