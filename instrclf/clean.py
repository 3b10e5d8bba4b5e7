"""The clean step: every raw note becomes fixed-length mono windows plus ``index.csv``.

Reads the raw layout written by ``download`` (``TinySOL_metadata.csv`` and
``audio/<Path>``), cuts each note exactly as :func:`instrclf.audio.prepare` does, and writes
``<out>/<label>/<stem>_<i>.wav`` (16-bit PCM, mono) and ``<out>/index.csv``, all inside
:func:`instrclf.io.atomic_dir`, so a failed run leaves the previous output untouched.
"""

import math
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import audio
from .audio import CleanConfig
from .errors import DataError, ParameterError
from .io import atomic_dir, atomic_file
from .params import choice
from .tinysol import read_metadata as read_metadata_csv

METADATA_FILE = "TinySOL_metadata.csv"
AUDIO_DIR = "audio"
INDEX_FILE = "index.csv"

#: Columns of index.csv, in order; one row per window.
INDEX_COLUMNS = ("window", "Path", "instrument", "family", "label", "fold", "window_index")

#: ``data.target`` -> the metadata column that gives the label.
TARGETS = {"instrument": "Instrument (abbr.)", "family": "Family"}

# Labels become folder names: plain names only, nothing that could leave out_dir.
_SAFE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _+.-]*")


@dataclass(frozen=True)
class Note:
    """One row of the metadata: a source recording and what it is."""

    path: str  # TinySOL's Path, relative to raw/audio
    fold: int
    family: str
    instrument: str
    label: str


def check_target(target):
    """Return ``target`` if it is ``"instrument"`` or ``"family"``, else raise naming ``data.target``."""
    return choice("data.target", target, TARGETS)


def read_metadata(raw_dir, *, target):
    """Read and check the raw metadata CSV.

    Parameters
    ----------
    raw_dir : str or Path
        The ``download`` stage's output folder.
    target : str
        ``"instrument"`` or ``"family"``; picks each note's label.

    Returns
    -------
    list of Note
        Sorted by Path.

    Raises
    ------
    DataError
        Missing file or columns, duplicate or unsafe paths, non-integer folds, empty or
        unsafe labels, or two notes that would write the same window files.
    """
    column = TARGETS[check_target(target)]
    csv = Path(raw_dir) / METADATA_FILE
    df = read_metadata_csv(csv, dtype=str, keep_default_na=False)
    problems = []
    for col in ("Path", "Family", "Instrument (abbr.)"):
        for path in df.loc[df[col].str.strip() == "", "Path"]:
            problems.append(f"row with Path {path!r}: empty {col!r}")
    folds = pd.to_numeric(df["Fold"], errors="coerce")
    bad_fold = folds.isna() | (folds != folds.round()) | (folds < 0)
    for path, fold in zip(df.loc[bad_fold, "Path"], df.loc[bad_fold, "Fold"]):
        problems.append(f"{path}: Fold must be an integer >= 0, got {fold!r}")
    for path in sorted(set(df.loc[df["Path"].duplicated(), "Path"])):
        problems.append(f"{path}: listed more than once")
    for path in df["Path"]:
        parts = PurePosixPath(path).parts
        if path.startswith("/") or ".." in parts or "\\" in path:
            problems.append(f"{path}: Path must be relative to {AUDIO_DIR}/ without '..'")
    for label in sorted(set(df[column])):
        if label and not _SAFE_LABEL.fullmatch(label):
            problems.append(f"{column} {label!r} is not usable as a folder name")
    if problems:
        raise DataError(f"{csv}: bad metadata:\n  " + "\n  ".join(problems))

    notes = sorted(
        (
            Note(path=p, fold=int(f), family=fam, instrument=inst, label=lab)
            for p, f, fam, inst, lab in zip(df["Path"], folds, df["Family"], df["Instrument (abbr.)"], df[column])
        ),
        key=lambda n: n.path,
    )
    seen = {}
    for note in notes:
        key = (note.label, PurePosixPath(note.path).stem)
        if key in seen:
            problems.append(f"{seen[key]} and {note.path} would both write {key[0]}/{key[1]}_<i>.wav")
        seen[key] = note.path
    if problems:
        raise DataError(f"{csv}: window names collide:\n  " + "\n  ".join(problems))
    return notes


def _process(notes, *, audio_dir, out_dir, config):
    """Cut each note into windows and write them; return one result dict per note.

    A DataError from a file is recorded in its result, not raised, so that every bad
    file can be reported together.
    """
    results = []
    for note in notes:
        result = {"path": note.path, "frames": 0, "sr": 0, "kept": 0, "windows": 0, "clipped": 0, "error": None}
        try:
            y, sr = audio.load(Path(audio_dir) / note.path)
            result.update(frames=len(y), sr=sr)
            # audio.prepare(...) is exactly windows(trim(...)); split here to count kept samples.
            kept = audio.trim(
                y, sr, sample_rate=config.sample_rate, threshold_db=config.threshold_db, envelope_ms=config.envelope_ms
            )
            result["kept"] = len(kept)
            cut = audio.windows(kept, sample_rate=config.sample_rate, delta_time=config.delta_time)
        except DataError as exc:
            result["error"] = str(exc)
            results.append(result)
            continue
        stem = PurePosixPath(note.path).stem
        for i, window in enumerate(cut):
            path = Path(out_dir) / note.label / f"{stem}_{i}.wav"
            result["clipped"] += audio.write_pcm16(path, window, sample_rate=config.sample_rate)
        result["windows"] = len(cut)
        results.append(result)
    return results


def _chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(raw_dir, out_dir, *, config, target, jobs=None, progress=True):
    """Clean the whole raw set into windows, index.csv and metrics.

    Parameters
    ----------
    raw_dir : str or Path
        Holds ``TinySOL_metadata.csv`` and ``audio/<Path>`` for every row.
    out_dir : str or Path
        Replaced, only on success, by ``<label>/<stem>_<i>.wav`` windows and ``index.csv``.
    config : CleanConfig
        Sample rate, window length, threshold and envelope length.
    target : str
        ``"instrument"`` (label = ``Instrument (abbr.)``) or ``"family"`` (label = ``Family``).
    jobs : int or None
        Worker processes; ``None`` uses ``os.cpu_count()``. Outputs do not depend on it.
    progress : bool
        Show a tqdm progress bar (on a terminal).

    Returns
    -------
    dict
        Flat metrics: files_read, notes_silent, notes_padded, windows_written, classes,
        windows_per_class_min, windows_per_class_max, seconds_in, seconds_kept,
        samples_clipped.

    Raises
    ------
    ParameterError
        Bad ``target``, ``config`` or ``jobs``, before any work.
    DataError
        Bad metadata or missing audio (before any work), or, after every file was tried,
        one error listing every unreadable, empty, truncated, non-audio or NaN file.
        ``out_dir`` is then left as it was.
    """
    check_target(target)
    if not isinstance(config, CleanConfig):
        raise ParameterError(f"config must be a CleanConfig, got {type(config).__name__}")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs must be an integer >= 1, got {jobs!r}")
    raw_dir = Path(raw_dir)
    audio_dir = raw_dir / AUDIO_DIR
    notes = read_metadata(raw_dir, target=target)
    missing = [n.path for n in notes if not (audio_dir / n.path).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} audio file(s) listed in {raw_dir / METADATA_FILE} are missing under {audio_dir}:\n  "
            + "\n  ".join(missing)
        )

    with atomic_dir(out_dir) as tmp:
        for label in sorted({n.label for n in notes}):
            (tmp / label).mkdir()
        results = _run_all(notes, audio_dir=audio_dir, out_dir=tmp, config=config, jobs=jobs, progress=progress)
        errors = [r["error"] for r in results if r["error"] is not None]
        if errors:
            raise DataError(f"{len(errors)} of {len(notes)} audio file(s) are bad:\n  " + "\n  ".join(errors))
        index = _index(notes, results)
        if index.empty:
            raise DataError(
                f"no windows: every note in {audio_dir} is at or below clean.threshold_db = {config.threshold_db} dBFS"
            )
        for label in sorted({n.label for n in notes} - set(index["label"])):
            (tmp / label).rmdir()  # only silent notes: no empty folder (DVC would not restore it)
        index.to_csv(tmp / INDEX_FILE, index=False, lineterminator="\n")
        return _metrics(notes, results, index, config=config)


def _run_all(notes, *, audio_dir, out_dir, config, jobs, progress):
    """Process every note (in ``jobs`` processes) and return the results sorted by Path."""
    size = max(1, min(32, math.ceil(len(notes) / (jobs * 8))))
    chunks = _chunks(notes, size)
    kwargs = {"audio_dir": audio_dir, "out_dir": out_dir, "config": config}
    results = []
    bar = partial(tqdm, total=len(notes), desc="clean", unit="note", disable=None if progress else True)
    if jobs == 1 or len(chunks) == 1:
        with bar() as progress_bar:
            for chunk in chunks:
                results += _process(chunk, **kwargs)
                progress_bar.update(len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=_mp_context()) as pool:
            # Submitting starts the workers, before tqdm starts its monitor thread.
            futures = [pool.submit(_process, chunk, **kwargs) for chunk in chunks]
            try:
                with bar() as progress_bar:
                    for future in as_completed(futures):
                        done = future.result()
                        results += done
                        progress_bar.update(len(done))
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a bug or Ctrl-C: do not wait for the rest
                raise
    return sorted(results, key=lambda r: r["path"])


def _mp_context():
    """Worker start method: fork on Linux (fast, no ``__main__`` guard needed), the platform default elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else None)


def _index(notes, results):
    """index.csv as a DataFrame: one row per window, sorted by Path then window_index."""
    rows = []
    for note, result in zip(notes, results):
        stem = PurePosixPath(note.path).stem
        for i in range(result["windows"]):
            window = f"{note.label}/{stem}_{i}.wav"
            rows.append((window, note.path, note.instrument, note.family, note.label, note.fold, i))
    return pd.DataFrame(rows, columns=list(INDEX_COLUMNS))


def _metrics(notes, results, index, *, config):
    """Flat, numbers-only metrics of one clean run (sums taken in Path order: deterministic)."""
    per_class = index["label"].value_counts().reindex(sorted({n.label for n in notes}), fill_value=0)
    n = config.window_length
    return {
        "files_read": len(results),
        "notes_silent": sum(r["windows"] == 0 for r in results),
        "notes_padded": sum(0 < r["kept"] < n for r in results),
        "windows_written": len(index),
        "classes": int((per_class > 0).sum()),
        "windows_per_class_min": int(per_class.min()),
        "windows_per_class_max": int(per_class.max()),
        "seconds_in": round(sum(r["frames"] / r["sr"] for r in results), 3),
        "seconds_kept": round(sum(r["kept"] for r in results) / config.sample_rate, 3),
        "samples_clipped": sum(r["clipped"] for r in results),
    }


def pick_notes(notes, *, per_class=2):
    """Choose a few notes per label, deterministically: evenly spread over each label's sorted Paths.

    Parameters
    ----------
    notes : list of Note
    per_class : int
        Notes per label (fewer if a label has fewer).

    Returns
    -------
    list of Note
        Sorted by label, then Path.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ParameterError(f"per_class must be an integer >= 1, got {per_class!r}")
    by_label = {}
    for note in sorted(notes, key=lambda n: (n.label, n.path)):
        by_label.setdefault(note.label, []).append(note)
    chosen = []
    for group in by_label.values():
        k = min(per_class, len(group))
        picks = sorted({round(j * (len(group) - 1) / max(k - 1, 1)) for j in range(k)})
        chosen += [group[i] for i in picks]
    return chosen


def plot_threshold(raw_dir, path, *, config, target, per_class=2):
    """Draw the "test threshold" image: signal level, envelope and threshold for a few notes per class.

    Parameters
    ----------
    raw_dir : str or Path
        The raw layout (metadata CSV + audio).
    path : str or Path
        The PNG to write (atomically).
    config : CleanConfig
        The values clean uses; each note is shown as clean sees it (mono, resampled).
    target : str
        ``"instrument"`` or ``"family"``: one row of panels per label.
    per_class : int
        Notes (columns) per label, chosen by :func:`pick_notes`.
    """
    # Imported only when drawing; a bare Figure renders with Agg and leaves pyplot's state alone.
    from matplotlib.figure import Figure

    notes = pick_notes(read_metadata(raw_dir, target=target), per_class=per_class)
    labels = sorted({n.label for n in notes})
    cols = max(sum(n.label == lab for n in notes) for lab in labels)
    height = 1.7 * len(labels) + 0.7
    fig = Figure(figsize=(5.5 * cols, height))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.5 / height, top=1 - 0.8 / height, hspace=0.55, wspace=0.06)
    axes = fig.subplots(len(labels), cols, squeeze=False, sharey=True)
    for ax in axes.flat:
        ax.set_visible(False)
    for row, label in enumerate(labels):
        for col, note in enumerate(n for n in notes if n.label == label):
            y, sr = audio.load(Path(raw_dir) / AUDIO_DIR / note.path)
            mono = audio.resample(audio.to_mono(y), orig_sr=sr, target_sr=config.sample_rate)
            _threshold_panel(axes[row, col], mono, config=config, title=f"{label}: {PurePosixPath(note.path).name}")
        axes[row, 0].set_ylabel("dBFS", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    title = f"clean: envelope threshold at {config.sample_rate} Hz (time in seconds)"
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)


def _threshold_panel(ax, mono, *, config, title):
    """One note: 5-ms RMS level, envelope, threshold line and the kept samples shaded, in dBFS."""
    sr = config.sample_rate
    floor = min(-100.0, config.threshold_db - 20.0)
    env = audio.envelope(mono, sample_rate=sr, envelope_ms=config.envelope_ms)
    keep = env > audio.db_to_amplitude(config.threshold_db)
    block = max(1, sr // 200)  # short-term RMS in 5 ms blocks shows the signal's own level
    blocks = len(mono) // block
    rms = np.sqrt(np.mean(np.square(mono[: blocks * block], dtype=np.float64).reshape(blocks, block), axis=1))
    step = max(1, sr // 1000)  # draw the envelope every millisecond: it is piecewise constant
    t = np.arange(0, len(mono), step) / sr
    ax.set_visible(True)
    ax.plot((np.arange(blocks) + 0.5) * block / sr, _db(rms, floor), color="0.6", lw=0.8, label="signal (5 ms RMS)")
    ax.plot(t, _db(env[::step], floor), color="tab:blue", lw=1.0, label=f"envelope ({config.envelope_ms} ms max)")
    ax.axhline(config.threshold_db, color="tab:red", ls="--", lw=1.0, label=f"threshold {config.threshold_db} dBFS")
    ax.fill_between(t, floor, 0, where=keep[::step], color="tab:green", alpha=0.15, lw=0, label="kept")
    ax.set_ylim(floor, 0)
    ax.set_xlim(0, max(len(mono) / sr, 1e-3))
    ax.set_title(f"{title} ({keep.mean():.0%} kept)", fontsize=8)
    ax.tick_params(labelsize=7)


def _db(y, floor):
    """``20 log10 |y|`` clipped below at ``floor`` dBFS."""
    return np.maximum(20.0 * np.log10(np.maximum(np.abs(y), 1e-12)), floor)
