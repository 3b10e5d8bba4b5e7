"""The clean step: every raw note becomes fixed-length mono windows plus ``index.csv``.

Reads the raw layout (:func:`instrclf.layout.read_metadata`), cuts each note exactly as
:func:`instrclf.audio.prepare` does, and writes ``<out>/<label>/<stem>_<i>.wav`` (16-bit
PCM, mono) and ``<out>/index.csv``, all inside :func:`instrclf.io.atomic_dir`, so a failed
run leaves the previous output untouched.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import pandas as pd

from . import audio, layout
from .errors import DataError, ParameterError
from .io import atomic_dir
from .parallel import process_map
from .settings import CleanSettings


@dataclass(frozen=True)
class Note:
    """One row of the raw metadata: a source recording and its label."""

    path: str  # TinySOL's Path, relative to raw/audio
    fold: int
    family: str
    instrument: str
    library: str
    label: str

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem


@dataclass(frozen=True)
class Result:
    """What cleaning one note gave: sizes for the metrics, or the reason it failed."""

    frames: int = 0
    sample_rate: int = 0
    kept: int = 0
    windows: int = 0
    clipped: int = 0
    error: str | None = None


def read_notes(raw_dir, *, target: str) -> list:
    """The raw set's notes, sorted by Path, labelled by ``data.target``.

    Two notes that would write the same window files (same label and file stem) are an
    error naming both.
    """
    if target not in layout.TARGETS:
        raise ParameterError(f"data.target must be one of {sorted(layout.TARGETS)}, got {target!r}")
    metadata = layout.read_metadata(raw_dir, check_audio=False)
    labels = layout.label_column(metadata, target=target)
    notes = [
        Note(path=p, fold=int(f), family=fam, instrument=inst, library=lib, label=lab)
        for p, f, fam, inst, lib, lab in zip(
            metadata["Path"], metadata["fold"], metadata["family"], metadata["instrument"], metadata["library"], labels
        )
    ]
    seen, problems = {}, []
    for note in notes:
        key = (note.label, note.stem)
        if key in seen:
            problems.append(f"{seen[key]} and {note.path} would both write {key[0]}/{key[1]}_<i>.wav")
        seen[key] = note.path
    if problems:
        raise DataError(f"{Path(raw_dir) / layout.METADATA_FILE}: window names collide: " + "; ".join(problems))
    return notes


def clean_note(note: Note, *, audio_dir, out_dir, clean: CleanSettings) -> Result:
    """Cut one note into windows and write them; a bad or missing file is a Result with ``error``."""
    path = Path(audio_dir) / note.path
    if not path.is_file():
        return Result(error=f"{path}: missing (listed in {layout.METADATA_FILE})")
    try:
        y, sr = audio.load(path)
        # audio.prepare(...) is exactly windows(trim(...)); split here to count kept samples.
        kept = audio.trim(
            y, sr, sample_rate=clean.sample_rate, threshold_db=clean.threshold_db, envelope_ms=clean.envelope_ms
        )
        cut = audio.windows(kept, sample_rate=clean.sample_rate, delta_time=clean.delta_time)
    except DataError as exc:
        return Result(error=str(exc))
    clipped = sum(
        audio.write_pcm16(Path(out_dir) / note.label / f"{note.stem}_{i}.wav", window, sample_rate=clean.sample_rate)
        for i, window in enumerate(cut)
    )
    return Result(frames=len(y), sample_rate=sr, kept=len(kept), windows=len(cut), clipped=clipped)


def run(raw_dir, out_dir, *, clean: CleanSettings, target: str, jobs=None, progress=True) -> dict:
    """Clean the whole raw set into windows, index.csv and metrics.

    Parameters
    ----------
    raw_dir : str or Path
        The raw layout: ``TinySOL_metadata.csv`` and ``audio/<Path>`` for every row.
    out_dir : str or Path
        Replaced, only on success, by ``<label>/<stem>_<i>.wav`` windows and ``index.csv``.
    clean : CleanSettings
        Sample rate, window length, threshold and envelope length.
    target : str
        ``"instrument"`` or ``"family"`` (``data.target``).
    jobs : int or None
        Worker processes; ``None`` uses every core. Outputs do not depend on it.
    progress : bool
        Show a progress bar (on a terminal).

    Returns
    -------
    dict
        Flat metrics: files_read, notes_silent, notes_padded, windows_written, classes,
        libraries, windows_per_class_min/max, seconds_in, seconds_kept, samples_clipped.

    Raises
    ------
    DataError
        Bad metadata (before any work), or, after every file was tried, one error listing
        every missing, unreadable, empty, truncated, non-audio or NaN file together.
        ``out_dir`` is then left as it was.
    """
    raw_dir = Path(raw_dir)
    notes = read_notes(raw_dir, target=target)
    with atomic_dir(out_dir) as tmp:
        for label in sorted({n.label for n in notes}):
            (tmp / label).mkdir()
        work = partial(clean_note, audio_dir=raw_dir / layout.AUDIO_DIR, out_dir=tmp, clean=clean)
        results = process_map(work, notes, jobs=jobs, desc="clean", unit="note", progress=progress)
        errors = [r.error for r in results if r.error is not None]
        if errors:
            raise DataError(f"{len(errors)} of {len(notes)} audio file(s) are missing or bad: " + "; ".join(errors))
        index = _index(notes, results)
        if index.empty:
            raise DataError(f"no windows: every note is at or below clean.threshold_db = {clean.threshold_db} dBFS")
        for label in sorted({n.label for n in notes} - set(index["label"])):
            (tmp / label).rmdir()  # only silent notes: no empty folder (DVC would not restore it)
        layout.write_index(tmp, index)
        return _metrics(notes, results, index, clean=clean)


def _index(notes, results) -> pd.DataFrame:
    """index.csv as a DataFrame: one row per window, sorted by Path then window_index."""
    rows = [
        (f"{n.label}/{n.stem}_{i}.wav", n.path, n.instrument, n.family, n.library, n.label, n.fold, i)
        for n, r in zip(notes, results)
        for i in range(r.windows)
    ]
    return pd.DataFrame(rows, columns=list(layout.INDEX_COLUMNS))


def _metrics(notes, results, index, *, clean: CleanSettings) -> dict:
    """Flat, numbers-only metrics of one clean run (sums taken in Path order: deterministic)."""
    per_class = index["label"].value_counts().reindex(sorted({n.label for n in notes}), fill_value=0)
    return {
        "files_read": len(results),
        "notes_silent": sum(r.windows == 0 for r in results),
        "notes_padded": sum(0 < r.kept < clean.window_length for r in results),
        "windows_written": len(index),
        "classes": int((per_class > 0).sum()),
        "libraries": int(index["library"].nunique()),
        "windows_per_class_min": int(per_class.min()),
        "windows_per_class_max": int(per_class.max()),
        "seconds_in": round(sum(r.frames / r.sample_rate for r in results), 3),
        "seconds_kept": round(sum(r.kept for r in results) / clean.sample_rate, 3),
        "samples_clipped": sum(r.clipped for r in results),
    }


def pick_notes(notes, *, per_class=2) -> list:
    """A few notes per label, deterministically: evenly spread over each label's sorted Paths.

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
    by_label = {}
    for note in sorted(notes, key=lambda n: (n.label, n.path)):
        by_label.setdefault(note.label, []).append(note)
    chosen = []
    for group in by_label.values():
        k = min(per_class, len(group))
        picks = sorted({round(j * (len(group) - 1) / max(k - 1, 1)) for j in range(k)})
        chosen += [group[i] for i in picks]
    return chosen
